"""The extraction's data path: uint8 crops in, float32 features out.

DataLoader workers hand over uint8 data only: either the image's uint8 crop (decoded by
PIL, resized and cropped as uint8, `decode: cpu`), or, with `decode: gpu`, the encoded
bytes of a JPEG that the device can decode; the device decodes those in batches with
`torchvision.io.decode_jpeg(device=...)` and resizes them with the same
`ImageTransform.resize_crop` the workers use. Conversion to float, normalisation and
channels_last happen on the device, on whole batches. Images the device decoder does not
take (other formats; CMYK, 12/16-bit or Adobe-transformed JPEGs) and any JPEG it fails on
go the CPU way.

`FeatureSink` copies each batch's pooled features back to the host asynchronously and
writes them into the memmaps one batch later, so on CUDA the device-to-host copy (on a
side stream, into pinned buffers) overlaps the next batch's compute. On the CPU the same
code path runs, with the copies being the tensors themselves.
"""

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from cnnatlas.data import load_image
from cnnatlas.errors import CnnatlasError
from cnnatlas.torchutil import ImageTransform

__all__ = [
    "DECODES",
    "PRECISIONS",
    "resolve_decode",
    "resolve_precision",
    "autocast_context",
    "strict_fp32",
    "jpeg_decodable",
    "CropDataset",
    "collate_crops",
    "unpack_jpegs",
    "device_batch",
    "rgb_to_gray",
    "FeatureSink",
]

log = logging.getLogger(__name__)

DECODES = ("auto", "cpu", "gpu")
# fp32 is the default everywhere: autocast moved the demo's 10-NN accuracies by more than
# 0.005 (docs/performance.md, benchmarks/precision.py).
PRECISIONS = ("fp32", "bf16", "fp16")

# SOF markers the device decoders take: baseline, extended sequential, progressive.
_SOF_OK = {0xC0, 0xC1, 0xC2}
_SOF_ALL = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def resolve_decode(decode: str) -> str:
    """`extract.decode` resolved: 'auto' is PIL in the workers on every device.

    On an H200 node with 16 CPUs (benchmarks/README.md) PIL in 15 workers fed resnet18
    and resnet50 faster than batched decode_jpeg on the GPU, so the device decoder is
    opt-in (`gpu`).
    """
    if decode not in DECODES:
        raise CnnatlasError(f"extract.decode is {decode!r}; use one of {DECODES}")
    return "cpu" if decode == "auto" else decode


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """`extract.precision` for this device: the autocast dtype, or None for float32.

    bf16 on a GPU without bf16 is fp16.
    """
    if precision not in PRECISIONS:
        raise CnnatlasError(
            f"extract.precision is {precision!r}; use one of {PRECISIONS}"
        )
    if precision == "bf16" and device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            precision = "fp16"
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """torch.autocast for `dtype` on the device, or no context for float32."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()


@contextmanager
def strict_fp32(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """For a float32 pass on CUDA, convolutions and matmuls in IEEE float32 while the
    context is open (cuDNN runs float32 convolutions as TF32 on Ampere and later by
    default: 10 mantissa bits, not what `precision: fp32` says); restored after."""
    if dtype is not None or device.type != "cuda":
        yield
        return
    flags = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [f.fp32_precision for f in flags]
    for f in flags:
        f.fp32_precision = "ieee"
    try:
        yield
    finally:
        for f, value in zip(flags, before, strict=True):
            f.fp32_precision = value


def jpeg_decodable(data: bytes) -> bool:
    """Whether `data` is a JPEG the device decoder takes: 8-bit, 1 or 3 components,
    baseline/extended/progressive, no Adobe colour transform (CMYK, YCCK, RGB-coded)."""
    if data[:2] != b"\xff\xd8":
        return False
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return False
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xEE and data[i + 4 : i + 9] == b"Adobe":
            return False
        if marker in _SOF_ALL:
            if marker not in _SOF_OK or i + 10 > len(data):
                return False
            return data[i + 4] == 8 and data[i + 9] in (1, 3)
        i += 2 + length
    return False


class CropDataset(Dataset):
    """The manifest's images as (uint8 data, row) pairs, in row order.

    The data is the image's uint8 crop [C, crop, crop], or, with `encoded=True`, the
    bytes of a JPEG the device can decode (1-D uint8) for the device to decode.
    """

    def __init__(
        self, paths: Sequence[str], transform: ImageTransform, encoded: bool = False
    ):
        self.paths = list(paths)
        self.transform = transform
        self.encoded = encoded

    def __len__(self) -> int:
        return len(self.paths)

    def crop(self, i: int) -> torch.Tensor:
        """Image i decoded by PIL and cropped as uint8 (the CPU path)."""
        channels = self.transform.spec.channels
        return self.transform.crop(load_image(self.paths[i], channels))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.encoded:
            data = Path(self.paths[i]).read_bytes()
            if jpeg_decodable(data):
                return torch.frombuffer(bytearray(data), dtype=torch.uint8), i
        return self.crop(i), i


def collate_crops(items: Sequence[tuple[torch.Tensor, int]]) -> dict[str, Any]:
    """A batch: rows, the stacked crops and their positions, the JPEG bytes packed into
    one buffer with each image's end offset, and their positions.

    A worker hands a batch over in five tensors whatever its size: one tensor per image
    is one shared-memory segment and file descriptor each (at batch 256 and prefetch 4,
    about 1,000 per worker, past a `ulimit -n` of 1024).
    """
    crop_pos = [k for k, (x, _) in enumerate(items) if x.ndim == 3]
    jpeg_pos = [k for k, (x, _) in enumerate(items) if x.ndim == 1]
    jpegs = [items[k][0] for k in jpeg_pos]
    return {
        "rows": torch.tensor([i for _, i in items], dtype=torch.int64),
        "crops": torch.stack([items[k][0] for k in crop_pos]) if crop_pos else None,
        "crop_pos": torch.tensor(crop_pos, dtype=torch.int64),
        "jpeg_bytes": torch.cat(jpegs) if jpegs else torch.empty(0, dtype=torch.uint8),
        "jpeg_ends": torch.tensor([len(x) for x in jpegs], dtype=torch.int64).cumsum(0),
        "jpeg_pos": torch.tensor(jpeg_pos, dtype=torch.int64),
    }


def unpack_jpegs(batch: Mapping[str, Any]) -> list[torch.Tensor]:
    """The batch's JPEG files as 1-D uint8 views of its packed buffer."""
    ends = batch["jpeg_ends"].tolist()
    sizes = np.diff([0, *ends]).tolist()
    return list(torch.split(batch["jpeg_bytes"], sizes))


def device_batch(
    batch: Mapping[str, Any], dataset: CropDataset, device: torch.device
) -> torch.Tensor:
    """The batch's normalised float32 inputs [N, C, H, W] on `device`, channels_last."""
    tf, rows = dataset.transform, batch["rows"]
    if not len(batch["jpeg_pos"]):
        x = batch["crops"].to(device, non_blocking=True)
    else:
        c, side = tf.spec.channels, tf.spec.crop
        x = torch.empty((len(rows), c, side, side), dtype=torch.uint8, device=device)
        if batch["crops"] is not None:
            pos = batch["crop_pos"].to(device, non_blocking=True)
            x[pos] = batch["crops"].to(device, non_blocking=True)
        jpegs = unpack_jpegs(batch)
        decoded = _decode(jpegs, rows[batch["jpeg_pos"]], dataset, device)
        x[batch["jpeg_pos"].to(device, non_blocking=True)] = decoded
    # channels_last while still uint8: a quarter of the bytes to move
    return tf.normalize(x.contiguous(memory_format=torch.channels_last))


def _decode(
    jpegs: list[torch.Tensor],
    rows: torch.Tensor,
    dataset: CropDataset,
    device: torch.device,
) -> torch.Tensor:
    tf = dataset.transform
    try:
        images = decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device)
        return _crop_batched(images, tf)
    except RuntimeError as err:
        # one image the device decoder refuses fails the whole batch: retry one by one
        log.info("batched JPEG decode on %s failed (%s); one by one", device, err)
    out, refused = [], []
    for data, row in zip(jpegs, rows.tolist(), strict=True):
        try:
            im = _crop(decode_jpeg(data, mode=ImageReadMode.RGB, device=device), tf)
        except RuntimeError as err:
            refused.append(f"{dataset.paths[row]} ({err})")
            im = dataset.crop(row).to(device)  # PIL; a DatasetError names the file
        out.append(im)
    if refused:
        log.warning(
            "%d JPEGs of a batch decoded by PIL instead of on %s, e.g. %s",
            len(refused),
            device,
            refused[0],
        )
    return torch.stack(out)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """uint8 RGB [..., 3, H, W] to uint8 gray [..., 1, H, W] with PIL's integer formula
    (ITU-R 601-2 luma), so gray crops equal those of `Image.convert("L")`."""
    r, g, b = x.to(torch.int32).unbind(-3)
    gray = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16
    return gray.to(torch.uint8).unsqueeze(-3)


def _crop_batched(images: list[torch.Tensor], tf: ImageTransform) -> torch.Tensor:
    """Decoded images to their crops, resized together per image size: one resize per
    size instead of one per image (on CUDA, per-image resizes were the bottleneck)."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for k, im in enumerate(images):
        by_size.setdefault(tuple(im.shape), []).append(k)
    if len(by_size) == 1:
        return _crop(torch.stack(images), tf)
    side, c = tf.spec.crop, tf.spec.channels
    out = torch.empty((len(images), c, side, side), dtype=torch.uint8,
                      device=images[0].device)  # fmt: skip
    for idx in by_size.values():
        out[idx] = _crop(torch.stack([images[k] for k in idx]), tf)
    return out


def _crop(image: torch.Tensor, tf: ImageTransform) -> torch.Tensor:
    # decoded as RGB and converted like PIL: libjpeg's own gray output (the Y channel)
    # differs from PIL's conversion by up to 7 levels
    return tf.resize_crop(rgb_to_gray(image) if tf.spec.channels == 1 else image)


class FeatureSink:
    """Pooled features [n, D] per layer into `.npy` memmaps, one batch behind the compute.

    `put(rows, tensors)` starts copying this batch's float32 tensors to the host and
    writes the previous batch's; `close()` writes the last one and moves the memmaps to
    `{name}.npy` in `out_dir`. Names in `in_memory` are collected in arrays instead
    (`arrays`). On CUDA, copies run on a side stream into two sets of pinned buffers.
    """

    def __init__(
        self,
        out_dir: str | Path,
        n: int,
        device: torch.device,
        in_memory: Sequence[str] = (),
    ):
        self.out_dir, self.n, self.device = Path(out_dir), n, device
        self.in_memory = set(in_memory)
        self.arrays: dict[str, np.ndarray] = {}
        self._tmp: dict[str, Path] = {}
        self._pending: tuple[slice, dict[str, torch.Tensor], Any] | None = None
        cuda = device.type == "cuda"
        self._stream = torch.cuda.Stream(device) if cuda else None
        self._buffers: list[dict[str, torch.Tensor]] = [{}, {}]
        self._turn = 0

    def put(self, rows: slice, tensors: Mapping[str, torch.Tensor]) -> None:
        """Start the copy of this batch's [B, D] tensors; write the previous batch."""
        pending = (rows, self._copy(tensors), None)
        if self._stream is not None:
            # blocking: waiting for the copy sleeps instead of spinning a core that
            # the DataLoader workers need
            event = torch.cuda.Event(blocking=True)
            event.record(self._stream)
            pending = (rows, pending[1], event)
        self._flush()
        self._pending = pending

    def _copy(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._stream is None:
            return {k: t.float() for k, t in tensors.items()}
        # the side stream waits for the compute that made the tensors, then copies them
        # while the default stream goes on with the next batch
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        buffers = self._buffers[self._turn]
        self._turn ^= 1
        host = {}
        with torch.cuda.stream(self._stream):
            for k, src in tensors.items():
                src.record_stream(self._stream)  # made on the default stream
                t = src.float()
                buf = buffers.get(k)
                if buf is None or buf.shape[0] < t.shape[0]:
                    buf = buffers[k] = torch.empty(t.shape, pin_memory=True)
                host[k] = buf[: t.shape[0]]
                host[k].copy_(t, non_blocking=True)
        return host

    def _flush(self) -> None:
        if self._pending is None:
            return
        rows, host, event = self._pending
        self._pending = None
        if event is not None:
            event.synchronize()
        for k, t in host.items():
            self._target(k, t.shape[1])[rows] = t.numpy()

    def _target(self, name: str, width: int) -> np.ndarray:
        if name in self.arrays:
            return self.arrays[name]
        if name in self.in_memory:
            self.arrays[name] = np.empty((self.n, width), np.float32)
        else:
            tmp = self.out_dir / f".{name}.npy.tmp{os.getpid()}"
            self._tmp[name] = tmp
            self.arrays[name] = np.lib.format.open_memmap(
                tmp, "w+", np.float32, (self.n, width)
            )
        return self.arrays[name]

    def close(self) -> None:
        """Write the last batch and move every memmap to its final name."""
        self._flush()
        for name, tmp in self._tmp.items():
            mm = self.arrays.pop(name)
            mm.flush()
            del mm
            os.replace(tmp, self.out_dir / f"{name}.npy")
        self._tmp.clear()

    def discard(self) -> None:
        """Remove the temporary memmaps (after a failure)."""
        self._pending = None
        for name, tmp in self._tmp.items():
            self.arrays.pop(name, None)
            tmp.unlink(missing_ok=True)
        self._tmp.clear()
