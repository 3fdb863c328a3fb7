"""Files whose lists are written from a registry (map methods, saliency methods).

A registry's sync module names the files it writes, each with a function from the file's
text to the text the registry asks of it; `stale` and `sync` compare and rewrite them,
`main` is the `python -m <package> [--check]` command around them.
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["ROOT", "Rewrites", "expected", "stale", "sync", "main"]

ROOT = Path(__file__).resolve().parents[3]

# repository-relative path -> (its text -> the text the registry asks of it)
Rewrites = Mapping[str, Callable[[str], str]]


def expected(files: Rewrites, path: str) -> str:
    """The text the registry asks of `path` (a key of `files`)."""
    return files[path]((ROOT / path).read_text(encoding="utf-8"))


def stale(files: Rewrites) -> list[str]:
    """The paths of `files` whose text disagrees with the registry."""
    return [
        p for p in files if expected(files, p) != (ROOT / p).read_text(encoding="utf-8")
    ]


def sync(files: Rewrites) -> list[str]:
    """Rewrite every stale file of `files`; returns their paths."""
    changed = stale(files)
    for path in changed:
        (ROOT / path).write_text(expected(files, path), encoding="utf-8")
    return changed


def main(
    prog: str, doc: str, listing: str, files: Rewrites, argv: Sequence[str] | None
) -> int:
    """`python -m prog [--check]`: print `listing`, then rewrite the stale files (or,
    with --check, name them and return 1 when there is one)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    print(listing)
    paths = stale(files) if args.check else sync(files)
    for path in paths:
        print(f"{'stale' if args.check else 'updated'}: {path}")
    return 1 if args.check and paths else 0
