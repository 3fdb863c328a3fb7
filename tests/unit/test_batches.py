"""The extraction's data path: uint8 crops, decoding on the device, the features' copy back."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from cnnatlas.batches import (
    CropDataset,
    FeatureSink,
    collate_crops,
    device_batch,
    jpeg_decodable,
    resolve_decode,
    resolve_precision,
    rgb_to_gray,
    strict_fp32,
    unpack_jpegs,
)
from cnnatlas.data import build_manifest, load_image
from cnnatlas.errors import CnnatlasError, DatasetError
from cnnatlas.extract import extract, extract_options, forward_pass, pool
from cnnatlas.schema import default
from cnnatlas.torchutil import LOGITS, make_transform, tap_layers
from PIL import Image

from tests.conftest import draw, float_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAYERS = {"layer1.0.relu_1": "avg", "layer3": "max", "avgpool": "flatten"}
RGB = {"resize": 36, "crop": 32, "mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
GRAY = {"resize": 36, "crop": 32, "mean": [0.5], "std": [0.25], "channels": 1}


def _image(seed: int, size: int = 48) -> Image.Image:
    kind = ("circle", "square", "stripes")[seed % 3]
    return Image.fromarray(draw(kind, size, np.random.default_rng(seed)))


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# name -> (bytes, does the device decoder take it)
KINDS = {
    "baseline.jpg": (lambda i: _bytes(i, "JPEG", quality=90), True),
    "progressive.jpg": (
        lambda i: _bytes(i, "JPEG", quality=80, progressive=True),
        True,
    ),
    "gray.jpg": (lambda i: _bytes(i.convert("L"), "JPEG", quality=90), True),
    "cmyk.jpg": (lambda i: _bytes(i.convert("CMYK"), "JPEG", quality=95), False),
    "plain.png": (lambda i: _bytes(i, "PNG"), False),
    "palette.png": (
        lambda i: _bytes(i.convert("P", palette=Image.ADAPTIVE), "PNG"),
        False,
    ),
    "sixteen.png": (
        lambda i: _bytes(
            Image.fromarray(np.asarray(i.convert("L"), np.uint16) * 257), "PNG"
        ),
        False,
    ),
}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """An ImageFolder mixing every kind (3 of each, two classes) and its manifest."""
    root = tmp_path_factory.mktemp("mixed")
    for k, (name, (write, _)) in enumerate(KINDS.items()):
        for i in range(3):
            folder = root / "images" / ("a" if i % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i}_{name}").write_bytes(write(_image(7 * k + i)))
    manifest = root / "m.parquet"
    build_manifest({"kind": "imagefolder", "path": str(root / "images")}, manifest)
    return manifest


def _twelve_bit(data: bytes) -> bytes:
    data = bytearray(data)
    sof = data.index(b"\xff\xc0")
    data[sof + 4] = 12  # the sample precision byte of the frame header
    return bytes(data)


def test_jpeg_decodable_takes_8_bit_gray_and_ycbcr_jpegs_only():
    img = _image(0)
    for name, (write, expected) in KINDS.items():
        assert jpeg_decodable(write(img)) is expected, name
    assert not jpeg_decodable(_twelve_bit(_bytes(img, "JPEG")))
    assert not jpeg_decodable(b"\xff\xd8\xff")  # cut off in its first segment
    assert not jpeg_decodable(b"text, not a JPEG")


def test_rgb_to_gray_is_pils_conversion():
    a = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    gray = rgb_to_gray(torch.from_numpy(a).permute(2, 0, 1))
    assert gray.shape == (1, 40, 30)
    assert np.array_equal(gray[0].numpy(), np.asarray(Image.fromarray(a).convert("L")))


def test_resolve_decode_and_precision():
    cpu = torch.device("cpu")
    assert resolve_decode("auto") == "cpu"
    assert resolve_decode("gpu") == "gpu"  # torchvision.io decodes on the CPU
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(CnnatlasError, match="extract.decode"):
        resolve_decode("nvjpeg")
    with pytest.raises(CnnatlasError, match="extract.precision"):
        resolve_precision("fp8", cpu)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=2).eval()


def test_cpu_path_gives_the_bytes_of_the_float_pipeline_it_replaced(mixed, tmp_path):
    """uint8 crops from the workers, normalised per batch: the features of normalising
    each image in float32 in the worker, as the pass did before."""
    paths = pd.read_parquet(mixed)["path"].tolist()
    model = _model()
    forward_pass(model, CropDataset(paths, make_transform(RGB)), LAYERS, tmp_path, 8)
    before = float_pipeline(RGB)
    x = torch.stack([before(load_image(p, 3)) for p in paths])
    with tap_layers(model, list(LAYERS)) as tapped, torch.inference_mode():
        for start in range(0, len(paths), 8):
            out = tapped(
                x[start : start + 8].contiguous(memory_format=torch.channels_last)
            )
            for layer, how in LAYERS.items():
                saved = np.load(tmp_path / f"{layer}.npy")[start : start + 8]
                assert np.array_equal(saved, pool(out[layer], how).numpy()), layer


@pytest.mark.parametrize("spec", [RGB, GRAY], ids=["rgb", "gray"])
def test_device_decode_agrees_with_the_pil_path(mixed, tmp_path, spec):
    """decode: gpu on the CPU (torchvision.io.decode_jpeg) against decode: cpu (PIL):
    the same inputs, so the same features; other formats fall back within one batch."""
    paths = pd.read_parquet(mixed)["path"].tolist()
    tf = make_transform(spec)
    encoded = CropDataset(paths, tf, encoded=True)
    batch = collate_crops([encoded[i] for i in range(len(paths))])
    assert len(batch["jpeg_pos"]) == 9 and batch["crops"].shape[0] == len(paths) - 9
    # five tensors whatever the batch size (no per-image tensor: one descriptor each)
    assert all(v is None or isinstance(v, torch.Tensor) for v in batch.values())
    # the JPEG files travel packed in one buffer and come back byte for byte
    assert [bytes(x.numpy()) for x in unpack_jpegs(batch)] == [
        Path(paths[k]).read_bytes() for k in batch["jpeg_pos"].tolist()
    ]
    pil = CropDataset(paths, tf)
    cpu = torch.device("cpu")
    x_pil = device_batch(collate_crops([pil[i] for i in range(len(paths))]), pil, cpu)
    x_dev = device_batch(batch, encoded, cpu)
    assert x_dev.shape == (len(paths), tf.spec.channels, 32, 32)
    assert x_dev.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x_dev, x_pil)
    model = torchvision.models.resnet18(weights=None, num_classes=2)
    model.conv1 = torch.nn.Conv2d(tf.spec.channels, 64, 7, 2, 3, bias=False)
    feats = {}
    for decode in ("cpu", "gpu"):
        out = tmp_path / decode
        extract(mixed, model.eval(), LAYERS, out / "p.parquet", out, spec,
                batch_size=8, decode=decode, device="cpu")  # fmt: skip
        feats[decode] = {layer: np.load(out / f"{layer}.npy") for layer in LAYERS}
    for layer in LAYERS:
        np.testing.assert_allclose(feats["gpu"][layer], feats["cpu"][layer], atol=1e-6)


def test_the_device_resize_kernel_is_within_one_level_of_the_cpu_one():
    """On CUDA, torchvision resizes uint8 through float32 and rounds; on the CPU it has
    a uint8 kernel. Same function, so the crops differ by at most one level."""
    tf = make_transform(RGB)
    x = torch.from_numpy(np.array(_image(3, 97))).permute(2, 0, 1)[None]
    cpu = tf.resize_crop(x)
    cuda_like = tf.resize_crop(x.float()).round().to(torch.uint8)
    assert cpu.shape == cuda_like.shape == (1, 3, 32, 32)
    assert (cpu.int() - cuda_like.int()).abs().max() <= 1


def test_sink_writes_one_batch_behind_and_moves_memmaps_on_close(tmp_path):
    sink = FeatureSink(tmp_path, 5, torch.device("cpu"), in_memory=[LOGITS])
    a, b = torch.arange(6.0).view(3, 2), torch.ones(2, 2, dtype=torch.bfloat16)
    sink.put(slice(0, 3), {"f": a, LOGITS: a[:, :1]})
    assert "f" not in sink.arrays  # nothing written yet: the copy is in flight
    sink.put(slice(3, 5), {"f": b, LOGITS: b[:, :1]})
    assert np.array_equal(sink.arrays["f"][:3], a.numpy())
    assert not (tmp_path / "f.npy").exists()
    sink.close()
    f = np.load(tmp_path / "f.npy")
    assert f.dtype == np.float32 and np.array_equal(f[3:], np.ones((2, 2)))
    assert np.array_equal(sink.arrays[LOGITS][:, 0], [0, 2, 4, 1, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy"]


def test_a_failed_pass_leaves_no_partial_files(mixed, tmp_path):
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if x.sum() > -1e9 and self.calls > 1:  # FX cannot trace this: hooks
                raise RuntimeError("boom")
            return self.conv(x).mean((2, 3))

    paths = pd.read_parquet(mixed)["path"].tolist()
    with pytest.raises(RuntimeError, match="boom"):
        forward_pass(
            Boom(),
            CropDataset(paths, make_transform(RGB)),
            {"conv": "avg"},
            tmp_path,
            8,
        )
    assert list(tmp_path.iterdir()) == []


def test_bf16_autocast_stores_float32_features_close_to_fp32(mixed, tmp_path):
    feats = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        extract(mixed, _model(), LAYERS, out / "p.parquet", out, RGB,
                batch_size=8, precision=precision, device="cpu")  # fmt: skip
        feats[precision] = np.load(out / "avgpool.npy")
    assert feats["bf16"].dtype == np.float32
    assert not np.array_equal(feats["bf16"], feats["fp32"])  # autocast did run
    corr = np.corrcoef(feats["bf16"].ravel(), feats["fp32"].ravel())[0, 1]
    assert corr > 0.999


def test_extract_options_come_from_the_schema_and_unknown_ones_are_refused():
    opts = extract_options({"batch_size": 7})
    assert opts["batch_size"] == 7
    assert opts["precision"] == default("extract.precision") == "fp32"
    assert opts["decode"] == default("extract.decode") == "auto"
    with pytest.raises(CnnatlasError, match=r"\['autocast'\]"):
        extract_options({"autocast": True})


def test_a_jpeg_no_decoder_reads_is_named(tmp_path):
    """Past the manifest's check only if the file changed since; PIL then names it."""
    good = _bytes(_image(0), "JPEG")
    sos = good.index(b"\xff\xda")
    path = tmp_path / "broken.jpg"
    path.write_bytes(good[: sos + 20] + b"\xff" * 200)  # a header, then garbage
    assert jpeg_decodable(path.read_bytes())
    ds = CropDataset([str(path)], make_transform(RGB), encoded=True)
    with pytest.raises(DatasetError, match="broken.jpg"):
        device_batch(collate_crops([ds[0]]), ds, torch.device("cpu"))


def test_strict_fp32_turns_tf32_off_on_cuda_for_fp32_only_and_restores_it():
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = (conv.fp32_precision, matmul.fp32_precision)
    cuda = torch.device("cuda")  # the flags are global: no GPU needed to set them
    with strict_fp32(cuda, None):
        assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
    assert (conv.fp32_precision, matmul.fp32_precision) == before
    for device, dtype in ((cuda, torch.bfloat16), (torch.device("cpu"), None)):
        with strict_fp32(device, dtype):
            assert (conv.fp32_precision, matmul.fp32_precision) == before
