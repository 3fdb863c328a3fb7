"""`index.html`: one page linking every figure, map and table of a run (relative links)."""

import html
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from cnnatlas.io import atomic_path

__all__ = ["write_index"]

log = logging.getLogger(__name__)

_KINDS = {
    ".html": "interactive map",
    ".png": "figure (PNG)",
    ".pdf": "figure (PDF)",
    ".parquet": "table",
}


def _section(path: Path, results: Path) -> str:
    """The group a file is listed under: its folder relative to the results root."""
    rel = path.parent.relative_to(results)
    return "run" if str(rel) == "." else str(rel)


def write_index(
    out: str | Path, files: Sequence[str | Path], title: str = "cnnatlas run"
) -> None:
    """Write `out` listing `files` (grouped by folder, sorted) as links relative to `out`'s folder."""
    out = Path(out)
    root = out.parent
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in sorted({Path(f) for f in files}):
        groups[_section(f, root)].append(f)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:16px} li{margin:2px 0}"
        " .kind{color:#666;font-size:smaller}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{sum(map(len, groups.values()))} files.</p>",
    ]
    for section in sorted(groups, key=lambda s: (s != "run", s)):
        parts.append(f"<h2>{html.escape(section)}</h2><ul>")
        for f in groups[section]:
            href = quote(Path(os.path.relpath(f, root)).as_posix())
            kind = _KINDS.get(f.suffix, f.suffix.lstrip("."))
            parts.append(
                f'<li><a href="{html.escape(href, quote=True)}">{html.escape(f.name)}</a>'
                f' <span class="kind">{html.escape(kind)}</span></li>'
            )
        parts.append("</ul>")
    parts.append("</body></html>\n")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    log.info("index of %d files: %s", len(files), out)
