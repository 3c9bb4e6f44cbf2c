"""The integrity record (seal) of an artifact: written last, checked by every reader, and the key lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qmu_core import storage
from qmu_core.artifacts.refs import ArtifactRef, companion, exists
from qmu_core.artifacts.schemas import FINITE_COLUMNS, STAGE_VERSIONS, non_finite
from qmu_core.errors import ArtifactError, SealError
from qmu_core.storage import atomic_path, sha256_file

SEAL_SUFFIX = ".seal.json"


def seal_path(ref: ArtifactRef) -> Path:
    """The integrity record of an artifact: ``<root>/<stage>/<key>.seal.json``."""
    return ref.path.with_name(ref.key + SEAL_SUFFIX)


def _seal_rel(ref: ArtifactRef) -> str:
    return f"{ref.stage}/{ref.key}{SEAL_SUFFIX}"


def seal(ref: ArtifactRef, files: Sequence[ArtifactRef], *, code: str = "") -> Path:
    """Record the SHA-256 of every file a stage wrote (main artifact and companions).

    `code` identifies the code that wrote them (the stage body's source digest): a stage whose
    code changed is recomputed even though its key did not.
    """
    record = {
        "key": ref.key,
        "stage_version": STAGE_VERSIONS[ref.stage],
        "code": code,
        "files": {f"{f.stage}/{f.path.name}": sha256_file(f.path) for f in files},
    }
    target = seal_path(ref)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    return target


def _load_record(record_path: Path) -> dict[str, Any] | str:
    """The integrity record at `record_path` (its ``files`` a mapping), or why it cannot be used."""
    try:
        record = json.loads(record_path.read_text())
        if not isinstance(record, dict) or not isinstance(record["files"], dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its integrity record {record_path} is missing or unreadable ({type(exc).__name__})"
    return record


def verify(ref: ArtifactRef, *, code: str = "") -> str | None:
    """Why the artifact at `ref` cannot be reused, or None if it can.

    It can when its integrity record exists, names the same stage version and code, and every
    file it lists is present with the recorded SHA-256. Nothing is imported or executed.
    For a URL root the record is always read from the root (the mirror's copy is replaced or
    removed) and every file is checked on the root (`storage.Remote.check`).
    """
    record_path = seal_path(ref)
    remote = storage.remote(ref.root)
    if remote is not None and not remote.download(_seal_rel(ref), refresh=True):
        return f"its integrity record {remote.location(_seal_rel(ref))} is missing"
    if not exists(ref):
        return f"{ref.location} is missing"
    record = _load_record(record_path)
    if isinstance(record, str):
        return record
    files = record["files"]
    if record.get("stage_version") != STAGE_VERSIONS[ref.stage]:
        return f"it was written by stage version {record.get('stage_version')}"
    if record.get("code") != code:
        return "the code of its stage changed since it was written"
    for rel, digest in files.items():
        if remote is not None:
            why = remote.check(str(rel), str(digest))
            if why is not None:
                return why
            continue
        path = storage.local_dir(ref.root) / str(rel)
        if not path.is_file():
            return f"{path} is missing"
        if sha256_file(path) != digest:
            return f"{path} does not match the checksum recorded when it was written"
    return None


_KEY = re.compile(r"^(?P<stage>[a-z_]+)-v\d+-[0-9a-f]{12}$")
_CHECKED: dict[tuple[Any, ...], bool] = {}  # (file, seal) versions whose check passed
_CHECKED_LOCK = threading.Lock()
SEAL_REMEDY = "does not match its seal; rerun `qmu run` to rebuild it, or restore the file"


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _sealed_by(ref: ArtifactRef) -> ArtifactRef:
    """The artifact whose integrity record lists `ref`'s file.

    That is `ref` itself, or for a companion (which has no record of its own) the main
    artifact it was written with.
    """
    remote = storage.remote(ref.root)
    own = seal_path(ref)
    if own.is_file() or (remote is not None and remote.download(_seal_rel(ref))):
        return ref
    try:
        raw = pq.read_schema(ref.path).metadata or {}
        main_key = str(json.loads(raw.get(b"qmu.inputs", b"{}").decode()).get("companion_of", ""))
    except (OSError, ValueError, AttributeError, pa.ArrowInvalid):
        return ref
    match = _KEY.match(main_key)
    if match is None or match["stage"] not in STAGE_VERSIONS:
        return ref
    main = ArtifactRef(stage=match["stage"], key=main_key, root=ref.root)
    if companion(main, ref.stage).key != ref.key:  # not the companion it claims to be
        return ref
    if remote is not None:
        remote.download(_seal_rel(main))
    return main


def check_seal(ref: ArtifactRef) -> str | None:
    """Why the file at `ref` must not be read, or None: a reader's check of its integrity record.

    Like `verify`, but for readers: only this file's SHA-256 is compared with the one its seal
    (its own, or for a companion the main artifact's) recorded; the stage's code digest, which a
    reader does not know, is not. A check that passed is remembered per version (mtime and
    size) of the file and of its seal, so a run hashes each file once. For a URL root the
    file and the seal are the mirror's copies (what the reader reads).
    """
    if not exists(ref):
        return f"{ref.location} is missing"
    holder = _sealed_by(ref)
    record_path = seal_path(holder)
    state = (str(ref.path), _stamp(ref.path), str(record_path), _stamp(record_path))
    with _CHECKED_LOCK:
        if _CHECKED.get(state):
            return None
    if state[3] is None:
        return f"its integrity record {record_path} is missing"
    record = _load_record(record_path)
    if isinstance(record, str):
        return record
    files = record["files"]
    if record.get("key") != holder.key:
        return f"its integrity record {record_path} is for {record.get('key')!r}, not {holder.key}"
    if ref.rel not in files:
        return f"its integrity record {record_path} does not list it"
    if sha256_file(ref.path) != files[ref.rel]:
        return f"its SHA-256 differs from the one recorded in {record_path} when it was written"
    with _CHECKED_LOCK:
        _CHECKED[state] = True
    return None


def _check_values(ref: ArtifactRef) -> str | None:
    """What is not finite in the `FINITE_COLUMNS` of the file at `ref`, or None.

    Cached per version of the file, like `check_seal`.
    """
    columns = list(FINITE_COLUMNS.get(ref.stage, ()))
    if not columns:
        return None
    state = ("values", str(ref.path), _stamp(ref.path))
    with _CHECKED_LOCK:
        if _CHECKED.get(state):
            return None
    try:
        frame = pq.read_table(ref.path, columns=columns).to_pandas()
    except (OSError, KeyError, pa.ArrowInvalid) as exc:
        return f"its columns {columns} cannot be read ({type(exc).__name__})"
    why = non_finite(frame, ref.stage)
    if why is None:
        with _CHECKED_LOCK:
            _CHECKED[state] = True
    return why


def require_seal(ref: ArtifactRef) -> None:
    """`check_seal`, raising; then the file's weights, probabilities or scores (`FINITE_COLUMNS`) must be finite.

    What every reader and every stage input goes through.

    Raises:
        SealError: If the file at `ref` does not match its seal (or has none), naming the file.
        ArtifactError: If it holds NaN or infinite values where `FINITE_COLUMNS` forbids them.
    """
    why = check_seal(ref)
    if why is not None:
        raise SealError(f"{ref.location} {SEAL_REMEDY} ({why}).")
    why = _check_values(ref)
    if why is not None:
        raise ArtifactError(
            f"{ref.location} holds values that are not finite: {why}. Nothing may be computed from it: "
            f"delete it and its seal ({_seal_rel(_sealed_by(ref))} under the artifact root), then rerun "
            "`qmu run` to rebuild it."
        )


@contextlib.contextmanager
def key_lock(ref: ArtifactRef) -> Iterator[None]:
    """An exclusive lock on one artifact key (``<root>/<stage>/.<key>.lock``), across processes and threads.

    Concurrent runs on one root compute each artifact once.

    For a URL root the lock file lies in this machine's mirror, so it serialises one machine's
    processes only; why two machines computing one key is still safe: `qmu_core.storage`.
    """
    lock = ref.path.with_name(f".{ref.key}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
