"""`ArtifactRef`, where one stage output lives, and the content key that names it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qmu_core import storage
from qmu_core.artifacts.schemas import STAGE_VERSIONS
from qmu_core.errors import ArtifactError


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


NOT_IN_KEY = frozenset({"root", "trained_with"})
"""Parameters that never change what an artifact is: where its file lives; which other reference
models shared its training job (`qmu_core.grouping`: float rounding only)."""


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
