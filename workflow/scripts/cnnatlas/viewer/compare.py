"""`compare.html`: two maps of the atlas side by side, each half a full atlas page.

The address names the two views as atlas addresses: `compare.html#a=<view>&b=<view>`,
each view URL-encoded as the atlas's own hash (`model=...&ckpt=...&layer=...`, and
`method`, `variant`, `colour` if wanted). Hover and selection are linked: what is
hovered or selected in one half is hovered or selected (the same image_ids) in the other
(a checkbox turns it off). The landing page's CKA tables link each cell to the pair of
maps it compares. Static: no data of its own, no network.
"""

import json
from pathlib import Path
from urllib.parse import quote, urlencode

from cnnatlas.io import atomic_path

__all__ = ["atlas_href", "compare_href", "write_compare_page"]

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Two maps side by side</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{margin:0;font-family:system-ui,sans-serif}
header{padding:4px 8px;font-size:13px;height:20px;overflow:hidden;white-space:nowrap}
.pair{display:flex;height:calc(100vh - 28px)}
.pair iframe{flex:1 1 50%;min-width:0;border:0;border-left:1px solid #bbb}
@media (max-width: 800px){.pair{flex-direction:column}}</style></head>
<body><header><label><input type="checkbox" id="compare-link" checked> link hover and
selection</label> &middot; two maps side by side (each half is the atlas, with its own menus):
<span id="compare-a"></span> | <span id="compare-b"></span></header>
<div class="pair"><iframe id="frame-a" title="left map"></iframe>
<iframe id="frame-b" title="right map"></iframe></div>
<script>
(function () {
  var p = new URLSearchParams(location.hash.slice(1));
  ['a', 'b'].forEach(function (k) {
    var view = p.get(k) || '';
    document.getElementById('frame-' + k).src = ATLAS + '#' + view;
    var v = new URLSearchParams(view), words = [];
    ['model', 'ckpt', 'layer', 'method'].forEach(function (x) { if (v.get(x)) words.push(v.get(x)); });
    document.getElementById('compare-' + k).textContent = words.join(' ');
  });
  // each half tells what is hovered and selected; the other half is told the same
  var frames = ['a', 'b'].map(function (k) { return document.getElementById('frame-' + k); });
  window.addEventListener('message', function (e) {
    var d = e.data, body = document.body;
    if (!d || d.cnnatlas !== 1) return;
    if (!document.getElementById('compare-link').checked) {
      body.dataset.unlinked = String(Number(body.dataset.unlinked || 0) + 1);
      return;
    }
    for (var i = 0; i < 2; i++) {
      if (e.source === frames[i].contentWindow) frames[1 - i].contentWindow.postMessage(d, '*');
    }
  });
})();
</script></body></html>
"""


def atlas_href(page: str, view: dict[str, str]) -> str:
    """The address of the atlas `page` (relative) opening on `view` (model, ckpt, layer
    and, if wanted, method, variant, colour)."""
    return f"{page}#" + urlencode(view, quote_via=quote)


def compare_href(page: str, a: dict[str, str], b: dict[str, str]) -> str:
    """The address of `page` (compare.html, relative) showing atlas views `a` and `b`."""
    return f"{page}#" + urlencode(
        {"a": urlencode(a), "b": urlencode(b)}, quote_via=quote
    )


def write_compare_page(out: str | Path, atlas: str | Path) -> None:
    """Write compare.html at `out`, framing the atlas page `atlas` (beside it) twice."""
    # a JS string literal; "<" escaped so that no name can close the script
    name = json.dumps(quote(Path(atlas).name)).replace("<", "\\u003c")
    page = _PAGE.replace("ATLAS", name)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
