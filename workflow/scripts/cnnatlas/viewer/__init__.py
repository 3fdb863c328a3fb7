"""The atlas page: its Python writer (`atlas`) and the vendored, pinned JS bundle.

`atlas.bundle.js` is built from `js/src/` and the exact package versions of
`js/package-lock.json` by `js/build.sh` (esbuild; node is needed only to rebuild it);
`atlas.bundle.LICENSES.txt` holds the licences of everything bundled.
"""

from cnnatlas.viewer.atlas import atlas_payload, render_atlas, write_atlas
from cnnatlas.viewer.compare import compare_href, write_compare_page

__all__ = [
    "atlas_payload",
    "render_atlas",
    "write_atlas",
    "compare_href",
    "write_compare_page",
]
