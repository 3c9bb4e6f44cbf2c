"""What an artifact root holds, and removing what no run needs (`qmu artifacts ls|gc`).

Kept: every file a ``runs/<name>/summary.json`` names, with its integrity record and its
companions (the files the record lists), and each run's own directory. Removed by `gc`:

* orphans: artifacts, integrity records and companions no summary names (a run that never
  finished leaves them; they are only a cache);
* temporary files of writers that are gone (``.<name>.<pid>.<random>.tmp`` whose process is
  not running) and lock files nobody holds;
* ``<root>/.prefect``: Prefect cache records and results written by QMU before 0.2, which named
  code to import and absolute paths outside the root;
* unfinished run folders (``runs/.<folder>.<pid>.<random>.tmp/``, `qmu_core.storage.StagedRun`)
  of processes that are gone: a run publishes its folder by renaming one whole.

While a run is in progress on the root (`live_run`, which every flow holds for its whole
duration) `gc` removes nothing: what the run reads and writes is named by no summary until it
ends, so it would look like orphans. `gc` holds the root's gate (``.runs-in-progress/live.lock``)
exclusively while it works; a run waits for it at its start.

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
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from qmu_core import storage
from qmu_core.artifacts import SEAL_SUFFIX, STAGE_VERSIONS, TMP_SUFFIX, temp_owner
from qmu_core.errors import ArtifactError
from qmu_core.storage import STAMP_SUFFIX

__all__ = ["LIVE_DIR", "collect_garbage", "listing", "live_run", "live_runs", "referenced", "remove_own_temp_files"]

LIVE_DIR = ".runs-in-progress"
"""Below the root (its mirror, for a URL root): the gate ``live.lock`` and one ``<pid>-<random>.json`` per live run."""
_GATE = "live.lock"


def _summaries(root: Path) -> list[Path]:
    """Every run's summary.json (an unfinished run's hidden temporary folder is no run)."""
    runs = root / "runs"
    return sorted(p for p in runs.glob("*/summary.json") if not p.parent.name.startswith(".")) if runs.is_dir() else []


def _unfinished(root: Path) -> list[Path]:
    """Temporary run folders (`storage.StagedRun`): runs writing their report now, or killed while they did."""
    runs = root / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir() and temp_owner(p) is not None) if runs.is_dir() else []


def _open_gate(root: Path) -> IO[str]:
    folder = root / LIVE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return open(folder / _GATE, "a+")


@contextlib.contextmanager
def live_run(root: Path | str) -> Iterator[Path]:
    """Mark a run in progress on `root` for the duration of the block (a flow's whole body).

    Holds a shared lock on the root's gate (``<root>/.runs-in-progress/live.lock``; waiting while
    a `gc` holds it) and names the process in ``<pid>-<random>.json`` beside it, so `gc` refuses to
    run, with that pid in its message, until the block ends. The lock goes with the process: a
    killed run blocks nothing; its marker file is removed by the next `gc`.
    """
    local = storage.local_dir(root)
    gate = _open_gate(local)
    marker = local / LIVE_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    try:
        fcntl.flock(gate.fileno(), fcntl.LOCK_SH)
        marker.write_text(json.dumps({"pid": os.getpid(), "started": time.time()}) + "\n")
        yield marker
    finally:
        marker.unlink(missing_ok=True)
        gate.close()  # releases the lock


def live_runs(root: Path | str) -> list[dict[str, Any]]:
    """The markers (``{"pid", "started", "path"}``) of runs in progress on `root` whose process is alive."""
    folder = storage.local_dir(root) / LIVE_DIR
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            data = json.loads(path.read_text())
            if _pid_alive(int(data["pid"])):
                found.append({"pid": int(data["pid"]), "started": data.get("started"), "path": path})
    return found


@contextlib.contextmanager
def _no_live_run(root: Path, *, dry_run: bool) -> Iterator[None]:
    """Hold the root's gate exclusively (no run can start meanwhile), or raise if a run holds it."""
    if not root.is_dir():  # nothing to protect, and gc creates no root
        yield
        return
    gate = _open_gate(root)
    try:
        try:
            fcntl.flock(gate.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = ", ".join(str(r["pid"]) for r in live_runs(root)) or "unknown"
            raise ArtifactError(
                f"a run is in progress on {root} (pid {pids}); gc removes nothing while runs are live "
                "— try again when it ends"
            ) from None
        for path in [] if dry_run else (root / LIVE_DIR).glob("*.json"):  # markers of runs that were killed
            path.unlink(missing_ok=True)
        yield
    finally:
        gate.close()


def _paths(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _paths(v)


def referenced(root: Path | str) -> set[Path]:
    """Every file under `root` (its mirror, for a URL root) that some run's summary needs.

    That is artifacts, seals and companions.
    """
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
    unfinished = _unfinished(root)
    if unfinished:
        dead = [p for p in unfinished if not _pid_alive(temp_owner(p) or 0)]
        lines.append(
            f"unfinished run folders: {len(unfinished)} ({len(dead)} of a process that is gone, removed by "
            f"`qmu artifacts gc`): {', '.join(p.name for p in unfinished[:5])}{' ...' if len(unfinished) > 5 else ''}"
        )
    live = live_runs(root)
    if live:
        pids = ", ".join(str(r["pid"]) for r in live)
        lines.append(f"runs in progress: {len(live)} (pid {pids}); gc removes nothing until they end")
    if (root / ".prefect").exists():
        lines.append(f"old Prefect cache records: {root / '.prefect'} (removed by `qmu artifacts gc`)")
    return "\n".join(lines) + "\n"


def collect_garbage(root: Path | str, *, dry_run: bool = False) -> list[Path]:
    """Remove orphans, dead writers' temporary files, free locks and old Prefect records.

    For a URL root only its local mirror is cleaned (module doc); the URL is left as it is.

    Returns:
        The paths removed (or that would be, with `dry_run`).

    Raises:
        ArtifactError: If a run is in progress on the root (`live_run`): nothing is removed.
    """
    root = storage.local_dir(root)
    with _no_live_run(root, dry_run=dry_run):
        return _collect(root, dry_run=dry_run)


def _collect(root: Path, *, dry_run: bool) -> list[Path]:
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

    for folder in _stage_dirs(root):  # a URL root's mirror: the stamps of files that go or are gone
        for stamp in folder.glob(f".*{STAMP_SUFFIX}"):
            file = stamp.with_name(stamp.name[1 : -len(STAMP_SUFFIX)])
            if file in doomed or not file.exists():
                doomed.append(stamp)
    doomed += [p for p in _unfinished(root) if not _pid_alive(temp_owner(p) or 0)]
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
    for path in _unfinished(root):  # a run folder being written, with its files
        if temp_owner(path) == mine:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for folder in [*_stage_dirs(root), root / "runs"]:
        if not folder.is_dir():
            continue
        for path in folder.rglob(f".*{TMP_SUFFIX}"):
            if temp_owner(path) == mine and path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
