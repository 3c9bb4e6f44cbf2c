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

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qmu_core import storage
from qmu_core.artifacts.refs import NOT_IN_KEY, ArtifactRef, _canonical, companion, exists, plan, stage_key
from qmu_core.artifacts.schemas import CORE_VERSION, FINITE_COLUMNS, SCHEMAS, STAGE_VERSIONS, _check_finite, non_finite
from qmu_core.artifacts.seals import (
    SEAL_REMEDY,
    SEAL_SUFFIX,
    _seal_rel,
    check_seal,
    key_lock,
    require_seal,
    seal,
    seal_path,
    verify,
)
from qmu_core.errors import ArtifactError
from qmu_core.provenance import FACTS, Facts, Provenance
from qmu_core.storage import TMP_SUFFIX, atomic_path, sha256_file, temp_owner

__all__ = [
    "ArtifactRef",
    "CORE_VERSION",
    "FINITE_COLUMNS",
    "NOT_IN_KEY",
    "Output",
    "SCHEMAS",
    "SEAL_REMEDY",
    "SEAL_SUFFIX",
    "STAGE_VERSIONS",
    "TMP_SUFFIX",
    "atomic_path",
    "check_seal",
    "companion",
    "exists",
    "key_lock",
    "non_finite",
    "plan",
    "read",
    "read_facts",
    "read_metadata",
    "read_path",
    "require_seal",
    "seal",
    "seal_path",
    "sha256_file",
    "stage_key",
    "temp_owner",
    "verify",
    "write",
    "write_output",
]

F = TypeVar("F", bound=Facts)


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
