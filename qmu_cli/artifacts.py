"""`qmu artifacts ls | gc`: list the artifact root, or remove what no run needs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qmu_core.storage import is_url, local_dir

__all__ = ["artifacts", "register"]


def register(sub: Any) -> None:
    """Add ``artifacts`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser("artifacts", help="List the artifact root, or remove what no run needs (gc).")
    p.add_argument("what", choices=["ls", "gc"])
    p.add_argument(
        "--root",
        default="data/artifacts",
        help="The artifact root (default data/artifacts); for a URL root, its local mirror on this machine.",
    )
    p.add_argument("--dry-run", action="store_true", help="gc: only list what would be removed.")
    p.set_defaults(handler=artifacts)


def artifacts(args: argparse.Namespace) -> int:
    """`qmu artifacts ls|gc`."""
    from qmu_core import housekeeping

    root = args.root if is_url(args.root) else Path(args.root)
    if is_url(root):
        print(f"qmu: {root} is a URL root: only this machine's mirror {local_dir(root)} is looked at", file=sys.stderr)
    if args.what == "ls":
        print(housekeeping.listing(root), end="")
        return 0
    removed = housekeeping.collect_garbage(root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    print(f"qmu: {verb} {len(removed)} file(s) under {root}", file=sys.stderr)
    return 0
