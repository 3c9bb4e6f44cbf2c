"""What an artifact root holds, and removing what no run needs (`qmu artifacts ls|gc`).

Kept: every file a ``runs/<name>/summary.json`` names, with its integrity record and its
companions (the files the record lists), and each run's own directory. Removed by `gc`:

* orphans: artifacts, integrity records and companions no summary names (a run that never
  finished leaves them; they are only a cache);
* temporary files of writers that are gone (``.<name>.<pid>.<random>.tmp`` whose process is
  not running) and lock files nobody holds;
* ``<root>/.prefect``: Prefect cache records and results written by QMU before 0.2, which named
  code to import and absolute paths outside the root.

For a URL root (``s3://...``, `qmu_core.storage`) every function here works on this machine's
local mirror of it only: the mirror is a cache of downloads and uploads, so anything removed
from it is downloaded again when needed. Nothing on the URL itself is listed or deleted (its
files are shared with other machines, whose runs this one cannot see); prune a remote root
with the object store's own tools (e.g. a lifecycle rule) if needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from qmu_core import storage
from qmu_core.artifacts import SEAL_SUFFIX, STAGE_VERSIONS, TMP_SUFFIX, temp_owner

__all__ = ["collect_garbage", "listing", "referenced", "remove_own_temp_files"]


def _summaries(root: Path) -> list[Path]:
    return sorted((root / "runs").glob("*/summary.json")) if (root / "runs").is_dir() else []


def _paths(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _paths(v)


def referenced(root: Path | str) -> set[Path]:
    """Every file under `root` (its mirror, for a URL root) that some run's summary needs
    (artifacts, seals, companions)."""
    root = storage.local_dir(root)
    keep: set[Path] = set()
    for summary in _summaries(root):
        try:
            listed = json.loads(summary.read_text()).get("artifacts", {})
        except (OSError, ValueError, AttributeError):
            continue  # an unreadable summary protects nothing; `ls` shows it
        for text in _paths(listed):
            path = Path(text)
            local = root / path.parent.name / path.name  # stored paths may be relative to another cwd
            if local.suffix != ".parquet":
                continue
            keep.add(local.resolve())
            seal = local.with_name(local.stem + SEAL_SUFFIX)
            keep.add(seal.resolve())
            with contextlib.suppress(OSError, ValueError, AttributeError):
                for rel in json.loads(seal.read_text()).get("files", {}):
                    keep.add((root / str(rel)).resolve())
    return keep


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_free(path: Path) -> bool:
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return True


def _stage_dirs(root: Path) -> list[Path]:
    return [root / s for s in STAGE_VERSIONS if (root / s).is_dir()]


def listing(root: Path | str) -> str:
    """A human-readable table of what the root holds (for a URL root: its local mirror)."""
    url = root if storage.is_url(root) else None
    root = storage.local_dir(root)
    keep = referenced(root)
    lines = [
        f"artifact root {url}: its local mirror {root} only (the URL itself is not listed)"
        if url
        else f"artifact root {root.resolve()}",
        "",
        "| stage | files | MB | used by a run | orphans |",
        "|---|---:|---:|---:|---:|",
    ]
    for folder in _stage_dirs(root):
        files = sorted(folder.glob("*.parquet"))
        used = sum(1 for f in files if f.resolve() in keep)
        mb = sum(f.stat().st_size for f in files) / 1e6
        lines.append(f"| {folder.name} | {len(files)} | {mb:.2f} | {used} | {len(files) - used} |")
    runs = _summaries(root)
    temps = [p for d in _stage_dirs(root) for p in d.iterdir() if temp_owner(p) is not None]
    lines += ["", f"runs: {len(runs)} ({', '.join(s.parent.name for s in runs[-5:])}{' ...' if len(runs) > 5 else ''})"]
    lines.append(f"temporary files: {len(temps)}")
    if (root / ".prefect").exists():
        lines.append(f"old Prefect cache records: {root / '.prefect'} (removed by `qmu artifacts gc`)")
    return "\n".join(lines) + "\n"


def collect_garbage(root: Path | str, *, dry_run: bool = False) -> list[Path]:
    """Remove orphans, dead writers' temporary files, free locks and old Prefect records.

    For a URL root only its local mirror is cleaned (module doc); the URL is left as it is.

    Returns:
        The paths removed (or that would be, with `dry_run`).
    """
    root = storage.local_dir(root)
    keep = referenced(root)
    doomed: list[Path] = []
    for folder in _stage_dirs(root):
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            owner = temp_owner(path)
            if owner is not None:
                if not _pid_alive(owner):
                    doomed.append(path)
            elif path.name.endswith(".lock"):
                if _lock_free(path):
                    doomed.append(path)
            elif (path.suffix == ".parquet" or path.name.endswith(SEAL_SUFFIX)) and path.resolve() not in keep:
                doomed.append(path)
    old = root / ".prefect"
    if old.exists():
        doomed.append(old)
    if not dry_run:
        for path in doomed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return doomed


def remove_own_temp_files(root: Path | str) -> list[Path]:
    """Delete this process's temporary files under `root` (its mirror, for a URL root) after an interrupt."""
    root = storage.local_dir(root)
    mine = os.getpid()
    removed = []
    for folder in [*_stage_dirs(root), root / "runs"]:
        if not folder.is_dir():
            continue
        for path in folder.rglob(f".*{TMP_SUFFIX}"):
            if temp_owner(path) == mine:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
