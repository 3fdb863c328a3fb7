"""A corpus of bad and awkward inputs, generated on demand (no committed binaries).

`IMAGES` maps a file name to (writer, expected outcome): "ok" decodes as is, "converted"
decodes after conversion to 8-bit RGB/L, anything else is a regex the reason for
rejecting it must match. `write_images(folder)` writes them all; `write_imagefolder`
builds a whole ImageFolder around them (good classes, an empty class folder, a class
folder without images, awkward class names); `write_manifests` writes broken manifests.
"""

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import draw

AWKWARD_CLASSES = (
    "tab\tand\nnewline",
    '<img src=x onerror="alert(1)"> café & co',
    "space d ünï",
)


def _rgb(seed: int = 0, size: int = 24) -> np.ndarray:
    return draw("circle", size, np.random.default_rng(seed))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg() -> bytes:
    return _save(Image.fromarray(_rgb()), "JPEG", quality=90)


def _corrupt_jpeg() -> bytes:
    data = bytearray(_save(Image.fromarray(_rgb(size=64)), "JPEG", quality=90))
    mid = len(data) // 2
    data[mid : mid + 200] = b"\xff" * 200  # garbage inside the entropy-coded scan
    return bytes(data)


def _truncated_png() -> bytes:
    data = _save(Image.fromarray(_rgb()), "PNG")
    return data[: len(data) // 2]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 100-byte PNG whose header claims width x height (4e8 px, over 2x PIL's limit)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _cmyk() -> bytes:
    return _save(Image.fromarray(_rgb()).convert("CMYK"), "JPEG", quality=95)


def _png16() -> bytes:
    ramp = (np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 113) % 65535
    return _save(Image.fromarray(ramp), "PNG")  # uint16 -> mode I;16


def _gray() -> bytes:
    return _save(Image.fromarray(_rgb()).convert("L"), "PNG")


def _rgba() -> bytes:
    arr = np.dstack([_rgb(), np.full((24, 24), 128, np.uint8)])
    return _save(Image.fromarray(arr, "RGBA"), "PNG")


def _palette() -> bytes:
    return _save(Image.fromarray(_rgb()).convert("P", palette=Image.ADAPTIVE), "PNG")


def _animated_gif() -> bytes:
    frames = [Image.fromarray(_rgb(seed)).convert("P") for seed in range(3)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)


def _png() -> bytes:
    return _save(Image.fromarray(_rgb(1)), "PNG")


Writer = Callable[[], bytes]
IMAGES: dict[str, tuple[Writer, str]] = {
    "corrupt.jpg": (_corrupt_jpeg, r"OSError: broken data stream"),
    "truncated.png": (_truncated_png, r"OSError: image file is truncated"),
    "zero_bytes.png": (lambda: b"", r"UnidentifiedImageError: cannot identify"),
    "text_named.jpg": (
        lambda: b"this is text, not a JPEG\n",
        r"UnidentifiedImageError: cannot identify",
    ),
    "bomb.png": (
        _bomb_png,
        r"DecompressionBombError: Image size \(400000000 pixels\) exceeds limit",
    ),
    "cmyk.jpg": (_cmyk, "converted"),
    "sixteen_bit.png": (_png16, "converted"),
    "gray.png": (_gray, "converted"),
    "rgba.png": (_rgba, "converted"),
    "palette.png": (_palette, "converted"),
    "animated.gif": (_animated_gif, "converted"),
    "ünïcødé name & <b>.png": (_png, "ok"),
}
BAD = sorted(
    name for name, (_, out) in IMAGES.items() if out not in ("ok", "converted")
)


def write_images(folder: Path) -> dict[str, Path]:
    """Every `IMAGES` case as a file in `folder`; {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (writer, _) in IMAGES.items():
        (folder / name).write_bytes(writer())
        out[name] = folder / name
    return out


def write_imagefolder(root: Path, per_class: int = 4) -> Path:
    """An ImageFolder holding every kind of awkward input at once.

    - `mixed/`: every `IMAGES` case;
    - one class per `AWKWARD_CLASSES` name (tab, newline, HTML, unicode, spaces) with
      `per_class` good PNGs;
    - `empty/`: an empty class folder; `no_images/`: only a README.txt and a .DS_Store.
    """
    write_images(root / "mixed")
    for k, name in enumerate(AWKWARD_CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(_rgb(10 * k + i)).save(root / name / f"img {i} <&>.png")
    (root / "empty").mkdir()
    (root / "no_images").mkdir()
    (root / "no_images" / "README.txt").write_text("notes, not images\n")
    (root / "no_images" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return root


def write_manifests(folder: Path) -> dict[str, Path]:
    """Broken CSV manifests next to two good images: {case: csv path}."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.fromarray(_rgb(len(name))).save(folder / name)
    tables = {
        "missing_path": {"path": ["a.png", "gone.png"], "label": ["x", "y"]},
        "duplicate_path": {"path": ["a.png", "./a.png", "b.png"], "label": ["x"] * 3},
        "label_outside_classes": {"path": ["a.png", "b.png"], "label": ["x", "zebra"]},
        "integer_label_outside": {"path": ["a.png", "b.png"], "label": [0, 7]},
        "empty_rows": {"path": [], "label": []},
        "missing_label": {"path": ["a.png", "b.png"], "label": ["x", None]},
        "no_label_column": {"path": ["a.png"], "class": ["x"]},
    }
    out = {}
    for case, table in tables.items():
        pd.DataFrame(table).to_csv(folder / f"{case}.csv", index=False)
        out[case] = folder / f"{case}.csv"
    (folder / "zero_bytes.csv").write_bytes(b"")
    out["zero_bytes"] = folder / "zero_bytes.csv"
    return out
