"""Compare the outputs of two runs by their provenance.json: which files changed.

    python benchmarks/compare_provenance.py BEFORE/provenance.json AFTER/provenance.json

Prints JSON: counts, and the files whose sha256 differ (changed), that only the second
run wrote (new) or only the first (missing). Exit status 1 when a file changed or went
missing (new files are allowed: a new method's maps), else 0.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from cnnatlas.provenance import compare_outputs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    before, after = (json.loads(p.read_text()) for p in (args.before, args.after))
    diff = compare_outputs(before, after)
    report = {f"n_{k}": len(v) for k, v in diff.items()}
    report |= {k: diff[k] for k in ("changed", "new", "missing")}
    print(json.dumps(report, indent=2))
    return 1 if diff["changed"] or diff["missing"] else 0


if __name__ == "__main__":
    sys.exit(main())
