"""One set of thumbnail sheets per dataset, shared by every interactive map of a run.

Image i of the manifest sits at cell i % PER_SHEET of sheet i // PER_SHEET, row-major in a
grid of `SHEET_COLUMNS` columns; every cell is `size` x `size` pixels, the image scaled to fit
(aspect kept) and centred on white. An HTML map references the sheets by relative path, so
its own size does not grow with the thumbnails, and a browser fetches each sheet once.
"""

import json
import logging
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm

from cnnatlas.data import load_image
from cnnatlas.io import atomic_path

__all__ = [
    "SHEET_COLUMNS",
    "PER_SHEET",
    "thumbnail",
    "write_thumbnail_sheets",
    "sheet_name",
]

log = logging.getLogger(__name__)

SHEET_COLUMNS = 64
PER_SHEET = SHEET_COLUMNS * SHEET_COLUMNS  # 3,072 px square sheets at 48 px per cell


def sheet_name(index: int) -> str:
    """File name of sheet `index` (inside the thumbnails folder)."""
    return f"sheet-{index:04d}.png"


def thumbnail(path: str | Path, size: int) -> Image.Image:
    """The image at `path` as an RGB `size` x `size` cell: scaled to fit, centred on white."""
    im = load_image(path, channels=3)
    scale = size / max(im.size)
    w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
    cell = Image.new("RGB", (size, size), "white")
    cell.paste(
        im.resize((w, h), Image.Resampling.LANCZOS), ((size - w) // 2, (size - h) // 2)
    )
    return cell


def write_thumbnail_sheets(
    manifest: str | Path, out_dir: str | Path, size: int = 48
) -> dict:
    """Sheets of every manifest image plus `index.json` (size, columns, per_sheet, n, sheets)."""
    paths = pd.read_parquet(manifest, columns=["image_id", "path"]).sort_values(
        "image_id"
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(paths)
    sheets = []
    for start in range(0, n, PER_SHEET):
        chunk = paths["path"].iloc[start : start + PER_SHEET].tolist()
        rows = -(-len(chunk) // SHEET_COLUMNS)
        sheet = Image.new("RGB", (SHEET_COLUMNS * size, rows * size), "white")
        for k, p in enumerate(tqdm(chunk, desc=f"sheet {len(sheets)}", mininterval=5)):
            sheet.paste(
                thumbnail(p, size),
                ((k % SHEET_COLUMNS) * size, (k // SHEET_COLUMNS) * size),
            )
        name = sheet_name(len(sheets))
        with atomic_path(out_dir / name) as tmp:
            sheet.save(tmp, format="PNG", optimize=False, compress_level=6)
        sheets.append(name)
    index = {
        "size": size,
        "columns": SHEET_COLUMNS,
        "per_sheet": PER_SHEET,
        "n": n,
        "sheets": sheets,
    }
    with atomic_path(out_dir / "index.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1) + "\n")
    log.info(
        "%d thumbnails of %d px in %d sheets under %s", n, size, len(sheets), out_dir
    )
    return index
