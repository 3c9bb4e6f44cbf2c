"""Artifact roots: a local directory, or any fsspec URL seen through a local mirror.

A root without ``scheme://`` is a local directory: artifacts are read and written in place
(atomic rename, per-key ``fcntl`` lock), exactly as before URL roots existed.

A URL root (``s3://bucket/qmu``, ``gs://bucket/qmu``, ``file:///mnt/shared/qmu``, any protocol
fsspec knows) lets workers on other machines share artifacts. Every process works in a local
*mirror* of the root, ``$QMU_ARTIFACT_CACHE/<sha256(url)[:16]>/`` (default
``~/.cache/qmu/roots/...``), laid out like a local root, so ``ArtifactRef.path`` stays a local
file every reader opens as before:

* reading an artifact first downloads it into the mirror when the mirror lacks it;
* a stage writes into the mirror as before, then uploads its files, and its integrity record
  (seal) LAST, so a seal on the root always comes after the files it lists;
* reuse (`qmu_core.artifacts.verify`) always re-reads the seal from the root and checks every
  file it lists on the root (downloading what the mirror lacks, then the same SHA-256 checks);
* the per-key lock stays a local file lock in the mirror: it serialises the processes of one
  machine. Two machines may compute the same key at once; that is safe because a key fixes
  every input (both results are valid for it) and uploads replace whole files. If their files
  interleave, the seal no longer matches them: the next `verify` says so and the stage is
  rebuilt, it is never handed on unchecked.

Only the root is shared: Prefect keeps no cache records for stages (``tasks/_stage.py``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from qmu_core.errors import ArtifactError

__all__ = [
    "CACHE_ENV",
    "STAMP_SUFFIX",
    "Remote",
    "StagedRun",
    "TMP_SUFFIX",
    "atomic_path",
    "in_root",
    "is_url",
    "local_dir",
    "location",
    "mirror_dir",
    "normalize",
    "remote",
    "root_relative",
    "run_folder",
    "run_root",
    "sha256_file",
    "staged_run_folder",
    "temp_owner",
]

CACHE_ENV = "QMU_ARTIFACT_CACHE"
STAMP_SUFFIX = ".stamp"
"""A mirror file's record of the root object it holds (``.<file>.stamp`` beside it; `Remote.check`)."""
_VERSION_KEYS = ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "last_modified", "updated")
"""`fsspec` info keys that change when an object is rewritten (S3, GCS, local and other backends), first found wins."""
"""Environment variable: the directory that holds the mirrors of URL roots (one subdirectory each)."""

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(root: object) -> bool:
    """Whether `root` is a URL root (``scheme://...``); a `Path` never is."""
    return isinstance(root, str) and bool(_URL.match(root))


def normalize(root: Path | str) -> Path | str:
    """A root as `ArtifactRef` keeps it.

    A `Path` for a local directory, the URL (without trailing slashes) for a URL root.
    ``Path("s3://b/x")`` would collapse ``//``, so URLs stay strings.
    """
    if isinstance(root, Path):
        return root
    text = str(root)
    if not is_url(text):
        return Path(text)
    scheme, _, rest = text.partition("://")
    return f"{scheme.lower()}://{rest.rstrip('/') or '/'}"


def mirror_dir(url: str) -> Path:
    """The local mirror of URL root `url` (module doc): ``$QMU_ARTIFACT_CACHE/<sha256(url)[:16]>``."""
    url = str(normalize(url))
    base = os.environ.get(CACHE_ENV)
    if base:
        parent = Path(base).expanduser()
    else:
        parent = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qmu" / "roots"
    return parent / hashlib.sha256(url.encode()).hexdigest()[:16]


def local_dir(root: Path | str) -> Path:
    """Where this process reads and writes `root`'s files: the directory itself, or its mirror."""
    root = normalize(root)
    return mirror_dir(root) if isinstance(root, str) else root


def location(root: Path | str, rel: str) -> str:
    """How to show the file `rel` (``<stage>/<name>``, ``runs/<name>/summary.json``) of `root` to a user.

    Its URL for a URL root, its local path otherwise.
    """
    root = normalize(root)
    return f"{root.rstrip('/')}/{rel}" if isinstance(root, str) else str(root / rel)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_folder(root: Path | str, name: str) -> str:
    """``runs/<folder>``, the new folder (relative to `root`) of the run named `name`.

    The folder is derived from the name, never equal to it by trust: characters other than
    letters, digits, ``.``, ``_`` and ``-`` become ``-``, leading dots go (no ``..``, no hidden
    folder), and it is cut to 120 characters, so it stays one folder inside ``runs/`` whatever
    a form or ``--flow-run-name`` sent. An existing folder of that name (an earlier run's record)
    is never reused: ``-2``, ``-3``, ... is appended instead.
    """
    safe = _UNSAFE.sub("-", name).lstrip(".-").rstrip("-")[:120] or "run"
    runs = local_dir(root) / "runs"
    folder, n = safe, 1
    while (runs / folder).exists():
        n += 1
        folder = f"{safe}-{n}"
    if (runs / folder).resolve().parent != runs.resolve():
        raise ValueError(f"run folder {folder!r} of run {name!r} would leave {runs}")
    return f"runs/{folder}"


def run_root(summary: Path | str) -> Path | str:
    """The artifact root a run's file lies in: ``<root>/runs/<folder>/summary.json`` -> ``<root>``.

    The root the file *is* in, never one a summary names: a copied, moved or remounted root is its
    own root. A URL gives its URL root; a relative path a relative root when it has the parts
    (``data/artifacts/runs/x/summary.json`` -> ``data/artifacts``), else an absolute one.
    """
    if is_url(summary):
        return normalize(str(normalize(summary)).rsplit("/", 3)[0])
    path = Path(summary)
    if len(path.parts) > 3 and ".." not in path.parts[-3:]:
        return path.parents[2]
    return Path(os.path.abspath(path)).parents[2]


def root_relative(stored: str) -> str:
    """A file path a run's summary.json stores, relative to the artifact root.

    Summaries store exactly that (``model/<key>.parquet``, ``runs/<folder>/report.md``) since
    roots are relocatable; older ones stored an absolute path, a URL or a path relative to the
    run's working directory, whose tail (``<stage>/<file>``, ``runs/<folder>/<file>``) names the
    same file below the root.

    Raises:
        ArtifactError: If the path is empty or its tail climbs out of the root (``..``).
    """
    text = str(stored).split("://", 1)[-1] if is_url(str(stored)) else str(stored)
    parts = [p for p in PurePosixPath(text.replace("\\", "/")).parts if p != "/"]
    keep = 3 if len(parts) >= 3 and parts[-3] == "runs" else 2
    tail = parts[-keep:]
    if not tail or any(p in ("", ".", "..") for p in tail):
        raise ArtifactError(
            f"{stored!r} is not a file below an artifact root (<stage>/<file> or runs/<folder>/<file>)."
        )
    return "/".join(tail)


def in_root(summary: Path | str, stored: str) -> Path | str:
    """Where file `stored` (as a summary.json at `summary` stores it) lies below that summary's own root (`run_root`).

    A local path, or a URL for a URL root (its mirror copy is `local_dir(root) / rel`).
    """
    root = run_root(summary)
    rel = root_relative(stored)
    return f"{str(root).rstrip('/')}/{rel}" if isinstance(root, str) else root / rel


# --------------------------------------------------------------------------- local files

TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")


def _tmp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"


def temp_owner(path: Path) -> int | None:
    """The process id that wrote temporary file `path` (`atomic_path`'s naming), else None."""
    match = _TMP_NAME.match(path.name)
    return int(match.group("pid")) if match else None


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside `path`; on success it is fsynced and renamed to `path`.

    The temporary name carries the process id, so concurrent writers never collide and `gc`
    can tell a dead writer's leftovers. On any error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(_tmp_name(path.name))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagedRun:
    """A run folder being written (`staged_run_folder`).

    Every file goes into `tmp`, a hidden ``runs/.<folder>.<pid>.<random>.tmp/``
    (`temp_owner` names its writer), and `commit` renames it to a new ``runs/<folder>``
    (`run_folder`). A half-written run never has its final name.
    """

    def __init__(self, root: Path | str, name: str) -> None:
        self.root = normalize(root)
        self.name = name
        self.runs = local_dir(self.root) / "runs"
        self.runs.mkdir(parents=True, exist_ok=True)
        self.tmp = self.runs / _tmp_name(run_folder(self.root, name).removeprefix("runs/"))
        self.tmp.mkdir()
        self.rel: str | None = None

    def commit(self, last: Callable[[str], None] | None = None) -> str:
        """Rename `tmp` to a new ``runs/<folder>``; returns ``runs/<folder>``.

        `last(rel)` writes into `tmp` what names the folder (summary.json) just before the
        rename: the folder is chosen then, and chosen again if another run took the name first
        (a rename never replaces a run's folder; it fails on a non-empty one).
        """
        if self.rel is not None:
            return self.rel
        for _ in range(1000):
            rel = run_folder(self.root, self.name)
            if last is not None:
                last(rel)
            for path in self.tmp.iterdir():  # on disk before the name says the run is whole
                if path.is_file():
                    with open(path, "rb") as fh:
                        os.fsync(fh.fileno())
            try:
                os.rename(self.tmp, local_dir(self.root) / rel)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue
                raise
            _fsync_dir(self.runs)
            self.rel = rel
            return rel
        raise ArtifactError(f"Cannot find a free folder for run {self.name!r} in {self.runs}.")


@contextlib.contextmanager
def staged_run_folder(root: Path | str, name: str) -> Iterator[StagedRun]:
    """A `StagedRun` of run `name` under `root` (its mirror, for a URL root).

    On any error before `StagedRun.commit` its temporary folder is removed, so no folder of the run is left.
    """
    staged = StagedRun(root, name)
    try:
        yield staged
    finally:
        if staged.rel is None:
            shutil.rmtree(staged.tmp, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- URL roots


class Remote:
    """A URL root through fsspec, with this process's mirror of it (module doc)."""

    def __init__(self, url: str) -> None:
        import fsspec  # type: ignore[import-untyped]

        self.url = str(normalize(url))
        self.fs: Any
        self.fs, base = fsspec.core.url_to_fs(self.url)
        self.base = str(base).rstrip("/")
        self.mirror = mirror_dir(self.url)
        self._local = "file" in _protocols(self.fs)

    def remote_path(self, rel: str) -> str:
        """`rel` on the root, as the file system names it."""
        return f"{self.base}/{rel}"

    def local(self, rel: str) -> Path:
        """`rel` in the mirror."""
        return self.mirror / rel

    def location(self, rel: str) -> str:
        """`rel`'s URL."""
        return f"{self.url}/{rel}"

    def exists(self, rel: str) -> bool:
        """Whether the root holds file `rel` now (no listing cache)."""
        path = self.remote_path(rel)
        self.fs.invalidate_cache(path)
        try:
            return bool(self.fs.isfile(path))
        except FileNotFoundError:
            return False

    def stamp(self, rel: str) -> str | None:
        """What identifies the root's current object `rel` (its size and ETag or modification time), or None if absent.

        Any rewrite of the object changes it, also one with other bytes of the same size.
        """
        path = self.remote_path(rel)
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        version = next((info[k] for k in _VERSION_KEYS if info.get(k) not in (None, "")), None)
        return json.dumps([info.get("size"), str(version) if version is not None else None])

    def _stamp_file(self, rel: str) -> Path:
        target = self.local(rel)
        return target.with_name(f".{target.name}{STAMP_SUFFIX}")

    def _remember_stamp(self, rel: str, stamp: str | None) -> None:
        """Record which object of the root the mirror's copy of `rel` is (`check` trusts it while that holds)."""
        if stamp is not None:
            with atomic_path(self._stamp_file(rel)) as tmp:
                tmp.write_text(stamp)

    def download(self, rel: str, *, refresh: bool = False) -> bool:
        """Bring `rel` into the mirror (kept if already there, unless `refresh`).

        Returns:
            Whether the mirror now holds it. With `refresh`, a file the root no longer holds is
            removed from the mirror too, so the mirror never claims more than the root.
        """
        target = self.local(rel)
        if target.is_file() and not refresh:
            return True
        try:
            stamp = self.stamp(rel)  # before the bytes: a rewrite in between makes the next check download again
            with atomic_path(target) as tmp:
                self.fs.get_file(self.remote_path(rel), str(tmp))
            self._remember_stamp(rel, stamp)
        except FileNotFoundError:
            if refresh:
                target.unlink(missing_ok=True)
                self._stamp_file(rel).unlink(missing_ok=True)
            return False
        except Exception as exc:  # any backend error: s3fs raises botocore's (no endpoint, no credentials), not OSError
            raise ArtifactError(
                f"Cannot download {self.location(rel)} into {target} ({type(exc).__name__}: {exc}). "
                "Check that the artifact root is reachable and your credentials for it."
            ) from exc
        self._remember_url()
        return True

    def check(self, rel: str, digest: str) -> str | None:
        """Why file `rel` on the root does not hold the bytes with SHA-256 `digest`, or None.

        A mirror copy that already has `digest` is trusted while the root still holds the object
        it was downloaded from or uploaded as (`stamp`: size and ETag or modification time, so an
        object rewritten with other bytes of the same size is caught too); otherwise the root's
        file is downloaded (replacing the mirror's) and hashed.
        """
        target = self.local(rel)
        if target.is_file() and sha256_file(target) == digest:
            now = self.stamp(rel)
            if now is None:
                return f"{self.location(rel)} is missing"
            stamp_file = self._stamp_file(rel)
            if stamp_file.is_file() and stamp_file.read_text() == now:
                return None
        if not self.download(rel, refresh=True):
            return f"{self.location(rel)} is missing"
        if sha256_file(target) != digest:
            return f"{self.location(rel)} does not match the checksum recorded when it was written"
        return None

    def upload(self, rel: str) -> None:
        """Copy mirror file `rel` to the root, replacing the whole file.

        Object stores replace objects whole; on a (shared) file system the copy goes to a
        temporary name first and is then renamed.
        """
        source = self.local(rel)
        dest = self.remote_path(rel)
        parent = dest.rsplit("/", 1)[0]
        try:
            self.fs.makedirs(parent, exist_ok=True)
            if self._local:
                tmp = f"{parent}/{_tmp_name(rel.rsplit('/', 1)[-1])}"
                try:
                    self.fs.put_file(str(source), tmp)
                    self.fs.mv(tmp, dest)
                finally:
                    with contextlib.suppress(OSError):
                        if self.fs.exists(tmp):
                            self.fs.rm_file(tmp)
            else:
                self.fs.put_file(str(source), dest)
        except Exception as exc:  # any backend error: s3fs raises botocore's (no endpoint, no credentials), not OSError
            raise ArtifactError(
                f"Cannot upload {source} to {self.location(rel)} ({type(exc).__name__}: {exc}). "
                "Check that the artifact root is writable with your credentials (`qmu run` checks it first)."
            ) from exc
        self._remember_stamp(rel, self.stamp(rel))
        self._remember_url()

    def remove(self, rel: str) -> None:
        """Delete `rel` on the root if it is there."""
        path = self.remote_path(rel)
        self.fs.invalidate_cache(path)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.exists(path):
                self.fs.rm_file(path)

    def push(self, files: Sequence[str], *, last: str | None = None) -> None:
        """Upload mirror files `files`, then `last` (a seal or a summary) once they are all there.

        A `last` already on the root is removed first, so while the files are replaced no
        reader sees it beside files it does not describe.
        """
        if last is not None:
            self.remove(last)
        for rel in files:
            self.upload(rel)
        if last is not None:
            self.upload(last)

    def _remember_url(self) -> None:
        """Name the URL inside its mirror (``.url``), for people cleaning up the mirror cache."""
        marker = self.mirror / ".url"
        if not marker.is_file():
            with contextlib.suppress(OSError):
                marker.write_text(self.url + "\n")


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


@lru_cache(maxsize=16)
def _remote(url: str, cache: str | None) -> Remote:
    return Remote(url)


def remote(root: Path | str) -> Remote | None:
    """The `Remote` of a URL root (one per root and mirror location per process), None for a local one."""
    root = normalize(root)
    if not isinstance(root, str):
        return None
    return _remote(root, os.environ.get(CACHE_ENV))
