"""Content-addressed Parquet artifacts that describe themselves.

Every stage output lives at ``<root>/<stage>/<stage>-v<N>-<hash12>.parquet``. The key hashes the
stage name, its version in `STAGE_VERSIONS`, the config sections it read and the keys (not the
paths) of its upstream artifacts. Reuse is decided from the root alone, by this key and the file's
seal (`verify`); Prefect keeps no cache records for stages (they run with ``NO_CACHE``). Writes are
atomic (temp file, then rename).

The root is a local directory or any fsspec URL (``s3://bucket/qmu``, ``file:///mnt/shared/qmu``):
a URL root is read and written through a local mirror (`qmu_core.storage`), so `ArtifactRef.path`
is always a local file; the functions here download what a read needs and upload what a write
made. The root is never part of a key.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator

from qmu_core import storage
from qmu_core.errors import ArtifactError, SealError
from qmu_core.provenance import FACTS, Facts, Provenance
from qmu_core.storage import TMP_SUFFIX, atomic_path, sha256_file, temp_owner

__all__ = [
    "ArtifactRef",
    "Output",
    "TMP_SUFFIX",
    "atomic_path",
    "FINITE_COLUMNS",
    "SCHEMAS",
    "STAGE_VERSIONS",
    "check_seal",
    "companion",
    "exists",
    "non_finite",
    "plan",
    "read",
    "read_facts",
    "read_metadata",
    "read_path",
    "require_seal",
    "seal",
    "sha256_file",
    "stage_key",
    "temp_owner",
    "verify",
    "write",
    "write_output",
]

F = TypeVar("F", bound=Facts)

CORE_VERSION = "0.1.0"  # = qmu_core.__version__

# Bump a stage's version whenever the meaning or schema of its output changes: the integrity
# record's code digest covers the stage body in tasks/ only, not qmu_core, and a bump changes
# every downstream key.
STAGE_VERSIONS: dict[str, int] = {
    "splits": 6,  # v6: no zero-variance PCA directions; v5: roles stratified by class (v4: float64 features)
    "feature_map": 4,  # v4: zero-variance directions dropped (v3: float64 PCA, bounds from the same projection)
    "model": 1,  # facts gained optional wall_s, circuit_evals, method, stop_acc (None in older artifacts)
    "outputs": 2,  # v2: the <Z> read-out per record (`z`)
    "membership": 1,
    "mia_scores": 2,  # v2: every attack fitted once, every audited model in one table
    "metrics": 3,  # v3: per-attack metrics (`attack` column) with CIs; ROC points as its companion
    "roc": 1,
    "relearn": 1,
    "comparison": 1,
    "hw_records": 1,  # the records a hardware run measures
    "circuits": 1,  # prepared circuits (Cirq JSON) per record
    "distribution": 1,  # exact output distribution per record under a noise model (the emulator)
    "shots": 1,  # raw measurements, one integer per shot
    "hw_outputs": 1,  # outputs with the measured records' rows from shots (or the exact distribution)
    "hw_metrics": 1,  # accuracy and attack metrics over the measured records, per source
}

_F32_LIST = pa.list_(pa.float32())

SCHEMAS: dict[str, pa.Schema] = {
    "splits": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("label", pa.int64()),
            ("role", pa.string()),
            ("is_forget", pa.bool_()),
            ("x", _F32_LIST),
            ("pixels", _F32_LIST),
        ]
    ),
    "feature_map": pa.schema([("name", pa.string()), ("row", pa.int64()), ("values", pa.list_(pa.float64()))]),
    "model": pa.schema(
        [
            ("model_id", pa.string()),
            ("variable", pa.string()),
            ("shape", pa.list_(pa.int64())),
            ("values", _F32_LIST),
        ]
    ),
    "outputs": pa.schema(
        [
            ("model_id", pa.string()),
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("label", pa.int64()),
            ("is_forget", pa.bool_()),
            ("prob", _F32_LIST),
            ("z", _F32_LIST),
            ("loss", pa.float64()),
            ("correct", pa.bool_()),
        ]
    ),
    "membership": pa.schema([("model_id", pa.string()), ("sample_id", pa.int64()), ("is_member", pa.bool_())]),
    "mia_scores": pa.schema(
        [
            ("phase", pa.string()),
            ("model_id", pa.string()),
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("is_forget", pa.bool_()),
            ("attack", pa.string()),
            ("score", pa.float64()),
            ("is_member", pa.bool_()),
        ]
    ),
    "metrics": pa.schema(
        [
            ("model_id", pa.string()),
            ("phase", pa.string()),
            ("attack", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "roc": pa.schema([("phase", pa.string()), ("attack", pa.string()), ("fpr", pa.float64()), ("tpr", pa.float64())]),
    "relearn": pa.schema([("model_id", pa.string()), ("step", pa.int64()), ("forget_acc", pa.float64())]),
    "comparison": pa.schema(
        [
            ("repeat", pa.int64()),
            ("method", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("oracle", pa.float64()),
            ("gap", pa.float64()),
        ]
    ),
    "hw_records": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("label", pa.int64()),
            ("is_forget", pa.bool_()),
            ("x", _F32_LIST),
        ]
    ),
    "circuits": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("target", pa.string()),
            ("circuit_json", pa.large_string()),
            ("depth_before", pa.int64()),
            ("depth_after", pa.int64()),
            ("two_qubit_before", pa.int64()),
            ("two_qubit_after", pa.int64()),
        ]
    ),
    "distribution": pa.schema([("sample_id", pa.int64()), ("prob", pa.list_(pa.float64()))]),
    "shots": pa.schema([("sample_id", pa.int64()), ("shots", pa.list_(pa.uint16()))]),
    "hw_metrics": pa.schema(
        [
            ("source", pa.string()),
            ("model_id", pa.string()),
            ("phase", pa.string()),
            ("attack", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
}
SCHEMAS["hw_outputs"] = SCHEMAS["outputs"]

# Columns that must hold finite numbers only, checked at write (naming the stage and key) and at
# read (naming the file): weights, probabilities and <Z> read-outs, attack scores.
FINITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "model": ("values",),
    "outputs": ("prob", "z"),
    "hw_outputs": ("prob", "z"),
    "mia_scores": ("score",),
    "distribution": ("prob",),
}


def non_finite(frame: pd.DataFrame, stage: str) -> str | None:
    """What is not finite in `frame`'s `FINITE_COLUMNS`, or None."""
    for column in FINITE_COLUMNS.get(stage, ()):
        if column not in frame.columns or frame.empty:
            continue
        values = frame[column]
        try:
            if values.dtype == object:  # list cells: one flat array
                flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
            else:
                flat = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return f"column {column!r} holds values that are not numbers"
        bad = ~np.isfinite(flat)
        if bad.any():
            rows = [int(i) for i, v in enumerate(values) if not np.isfinite(np.asarray(v, dtype=np.float64)).all()]
            return (
                f"column {column!r} holds {int(bad.sum())} non-finite value(s) (NaN or infinite, "
                f"e.g. {float(flat[bad][0])}) in {len(rows)} row(s), first row {rows[0]}"
            )
    return None


def _check_finite(frame: pd.DataFrame, stage: str, key: str) -> None:
    why = non_finite(frame, stage)
    if why is not None:
        raise ArtifactError(
            f"Stage {stage!r} produced values that are not finite for {key}: {why}. Nothing was written "
            "or sealed. Its inputs (weights, outputs) are not usable: check them, or rerun with "
            "`qmu run --refresh` to rebuild them."
        )


class ArtifactRef(BaseModel):
    """Where one stage output lives. Cheap to hash, serialize and show in the UI.

    `root` is a local directory (a `Path`) or a URL root (a string ``scheme://...``, kept as
    given: a `Path` would collapse its ``//``). A string without ``scheme://`` becomes a `Path`.
    """

    model_config = ConfigDict(frozen=True)

    stage: str
    key: str
    root: Path | str = Field(
        Path("data/artifacts"),
        description="The artifact root: a local directory or a URL (s3://bucket/qmu, file:///mnt/shared/qmu).",
        json_schema_extra={"type": "string"},
    )

    @field_validator("root", mode="plain")  # not pydantic's Path parsing: it would collapse a URL's `//`
    @classmethod
    def _root(cls, value: Any) -> Path | str:
        if not isinstance(value, str | Path):
            raise ValueError(f"root must be a directory or a URL string, got {type(value).__name__}")
        return storage.normalize(value)

    @property
    def rel(self) -> str:
        """The file below the root: ``<stage>/<key>.parquet``."""
        return f"{self.stage}/{self.key}.parquet"

    @property
    def path(self) -> Path:
        """The local Parquet file of this artifact (for a URL root: in this process's mirror)."""
        return storage.local_dir(self.root) / self.stage / f"{self.key}.parquet"

    @property
    def location(self) -> str:
        """Where the artifact lives, for people: its URL for a URL root, else its local path."""
        return storage.location(self.root, self.rel)


NOT_IN_KEY = frozenset({"root"})  # where a file lives never changes what it is


def _canonical(value: Any) -> Any:
    if isinstance(value, ArtifactRef):
        return value.key
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def stage_key(stage: str, inputs: Mapping[str, Any]) -> str:
    """Deterministic key for `stage` given everything it reads (`root` excluded)."""
    if stage not in STAGE_VERSIONS:
        raise ArtifactError(
            f"Unknown stage {stage!r}; known stages: {', '.join(STAGE_VERSIONS)}. "
            "Add it to STAGE_VERSIONS and SCHEMAS in qmu_core/artifacts.py."
        )
    version = STAGE_VERSIONS[stage]
    kept = {k: _canonical(v) for k, v in sorted(inputs.items()) if k not in NOT_IN_KEY}
    blob = json.dumps({"stage": stage, "v": version, "inputs": kept}, sort_keys=True, separators=(",", ":"))
    return f"{stage}-v{version}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def plan(stage: str, inputs: Mapping[str, Any], *, root: Path | str) -> ArtifactRef:
    """The ref `stage` will write for `inputs`. Reads and writes nothing."""
    return ArtifactRef(stage=stage, key=stage_key(stage, inputs), root=storage.normalize(root))


def exists(ref: ArtifactRef) -> bool:
    """Whether the artifact file is there (for a URL root: downloaded into the mirror if it was not)."""
    remote = storage.remote(ref.root)
    return ref.path.is_file() or (remote is not None and remote.download(ref.rel))


def companion(ref: ArtifactRef, stage: str) -> ArtifactRef:
    """The ref of an artifact written together with `ref` (e.g. the splits' ``feature_map``)."""
    return plan(stage, {"companion_of": ref.key}, root=ref.root)


@dataclass(frozen=True)
class Output:
    """What a stage body returns: its table, its facts, companion tables and warnings.

    The stage contract (`tasks._stage`) writes `frame` at the planned ref and each companion
    at `companion(ref, stage)`, and logs every warning (something suspicious but allowed).
    """

    frame: pd.DataFrame
    facts: Facts | None = None
    companions: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def write(
    frame: pd.DataFrame,
    ref: ArtifactRef,
    inputs: Mapping[str, Any],
    *,
    facts: Facts | None = None,
    warnings: Sequence[str] = (),
    sealed: bool = True,
) -> ArtifactRef:
    """Write `frame` atomically with its provenance; `SCHEMAS[stage]` fixes the dtypes.

    Args:
        frame: The stage output, with exactly the columns of `SCHEMAS[ref.stage]`.
        ref: Where to write (from `plan`).
        inputs: The inputs the key was built from; stored as provenance.
        facts: The stage's facts (`qmu_core.provenance.FACTS[stage]`), stored as ``qmu.extra``.
        warnings: What was suspicious but allowed, stored as ``qmu.warnings`` so every report
            of a run that uses this artifact (cached or not) repeats them.
        sealed: Also record its seal (``code=""``), so every reader accepts it; `write_output`
            passes False and seals the main table and its companions together.

    Raises:
        ArtifactError: If a column of `FINITE_COLUMNS` holds NaN or an infinity (nothing is written).

    Returns:
        `ref`, for chaining.
    """
    expected = FACTS.get(ref.stage)
    if facts is not None and (expected is None or not isinstance(facts, expected)):
        raise ArtifactError(
            f"Stage {ref.stage!r} records facts of type {expected.__name__ if expected else 'None'}, "
            f"got {type(facts).__name__}."
        )
    schema = SCHEMAS[ref.stage]
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise ArtifactError(f"Stage {ref.stage!r} output lacks columns {missing}; it must have {schema.names}.")
    _check_finite(frame, ref.stage, ref.key)
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    provenance = {
        "qmu.stage": ref.stage,
        "qmu.key": ref.key,
        "qmu.stage_version": str(STAGE_VERSIONS[ref.stage]),
        "qmu.inputs": json.dumps(_canonical(dict(inputs)), sort_keys=True),
        "qmu.core_version": CORE_VERSION,
        "qmu.created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "qmu.extra": json.dumps(facts.model_dump(mode="json") if facts else {}, sort_keys=True),
        "qmu.warnings": json.dumps(list(warnings)),
    }
    meta = {**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in provenance.items()}}
    table = table.replace_schema_metadata(meta)
    with atomic_path(ref.path) as tmp:
        pq.write_table(table, tmp)
    if sealed:
        seal(ref, [ref])
    return ref


def write_output(output: Output, ref: ArtifactRef, inputs: Mapping[str, Any], *, code: str = "") -> ArtifactRef:
    """Write a stage body's `Output`.

    Companions first, then the main table at `ref`, then the integrity record (`seal`) that
    makes the artifact reusable.
    """
    for stage, frame in output.companions.items():  # every table checked before the first is written
        _check_finite(frame, stage, companion(ref, stage).key)
    _check_finite(output.frame, ref.stage, ref.key)
    written = []
    for stage, frame in output.companions.items():
        written.append(write(frame, companion(ref, stage), {"companion_of": ref.key, **inputs}, sealed=False))
    write(output.frame, ref, inputs, facts=output.facts, warnings=output.warnings, sealed=False)
    seal(ref, [*written, ref], code=code)
    remote = storage.remote(ref.root)
    if remote is not None:  # files first, the seal last: a seal on the root never precedes its files
        remote.push([f.rel for f in [*written, ref]], last=_seal_rel(ref))
    return ref


# --------------------------------------------------------------------------- integrity

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


def read_metadata(ref: ArtifactRef) -> Provenance:
    """Provenance of an artifact: stage, key, version, inputs and facts (untyped dict).

    Every reader goes through here: the file is checked against its seal first (`require_seal`).

    Raises:
        SealError: If the file does not match its seal or has none.
        ArtifactError: If it is missing, unreadable or from another stage version.
    """
    if not exists(ref):
        raise ArtifactError(
            f"Artifact {ref.key} is missing: {ref.location} does not exist.\n"
            "It was probably deleted after a run cached it. Re-run with "
            "`qmu run ... --refresh` (or PREFECT_TASKS_REFRESH_CACHE=true) to rebuild it."
        )
    require_seal(ref)
    try:
        raw = pq.read_schema(ref.path).metadata or {}
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArtifactError(
            f"{ref.path} is not a readable Parquet file ({exc}). Delete it and re-run; the stage will write it again."
        ) from exc
    meta = {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"qmu.")}
    found_stage = meta.get("qmu.stage")
    found_version = meta.get("qmu.stage_version")
    if found_stage != ref.stage or found_version != str(STAGE_VERSIONS[ref.stage]):
        raise ArtifactError(
            f"{ref.path} was written by stage {found_stage!r} v{found_version}, but this code "
            f"reads {ref.stage!r} v{STAGE_VERSIONS[ref.stage]}. Re-run the flow (the current "
            "version writes under a new key)."
        )
    try:
        return Provenance(
            stage=str(found_stage),
            key=str(meta.get("qmu.key")),
            stage_version=int(str(found_version)),
            inputs=json.loads(meta.get("qmu.inputs", "{}")),
            facts=json.loads(meta.get("qmu.extra", "{}")),
            created_at=meta.get("qmu.created_at"),
            core_version=meta.get("qmu.core_version"),
            warnings=json.loads(meta.get("qmu.warnings", "[]")),
        )
    except ValueError as exc:
        raise ArtifactError(f"{ref.path} has unreadable provenance metadata ({exc}). Delete it and re-run.") from exc


def read_facts(ref: ArtifactRef, kind: type[F]) -> F:
    """The typed facts of an artifact (`qmu_core.provenance`)."""
    raw = read_metadata(ref).facts
    try:
        return kind.model_validate(raw)
    except ValueError as exc:
        raise ArtifactError(
            f"{ref.path} does not record {kind.__name__} facts ({exc}). It was written by other code; "
            "re-run the flow to rebuild it."
        ) from exc


def read_path(path: Path | str) -> pd.DataFrame:
    """Any QMU Parquet file as a DataFrame, for scripts (no stage or version check).

    Reads through pyarrow's own file layer. With pandas < 3.1, ``pd.read_parquet(path)`` hands
    pyarrow a Python file object, and pyarrow (17 to 26.0.1 at least) may then abort the
    interpreter at exit ("terminate called without an active exception", exit 134) in a few
    percent of runs; this function, ``pq.read_table(path).to_pandas()`` or
    ``pd.read_parquet(path, filesystem=pyarrow.fs.LocalFileSystem())`` do not.
    """
    return pq.read_table(Path(path)).to_pandas()


def read(ref: ArtifactRef) -> pd.DataFrame:
    """Read an artifact written by `write`.

    Its seal, stage and version are checked first and its `FINITE_COLUMNS` after.

    Raises:
        SealError: If the file does not match its seal or has none.
        ArtifactError: If it is missing, unreadable, from another stage version, or holds NaN or
            infinite weights, probabilities or scores.
    """
    read_metadata(ref)  # seal and finite values (`require_seal`)
    return read_path(ref.path)
