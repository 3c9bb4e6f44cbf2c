"""What `qmu audit RUN_OR_MODEL` audits, and with which config.

* A run (its directory or summary.json): the run's config and its models (``before``,
  ``after_*``, ``oracle``).
* A model artifact (``<root>/model/<key>.parquet``, trained or unlearned): one model, with the
  config recovered from the artifacts' own provenance: the model's inputs (model section,
  classes, training recipe, seed; an unlearned model is followed back to the model it started
  from) and its split's inputs (data section). Its artifact root is the model file's root.

A URL below a URL artifact root (``s3://b/qmu/runs/<name>``, ``.../model/<key>.parquet``) works
the same way: the files are downloaded into the root's local mirror and the audit writes to the URL root.

Either way the reference models come from the same artifact root, so a model audited after a
run reuses the run's cached reference models; ``--set attack.n_shadow=16`` trains only the new ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qmu_core import artifacts, storage
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import AttackConfig, QMUConfig
from qmu_core.errors import ArtifactError
from qmu_core.export import fetch_run_summary, model_inputs, resolve_model_ref
from qmu_core.overrides import validate

__all__ = ["Subject", "phase_name", "resolve"]


@dataclass(frozen=True)
class Subject:
    """The models to audit (``{phase: model ref}``) and the config they were made with."""

    config: QMUConfig
    models: dict[str, ArtifactRef]


def phase_name(which: str) -> str:
    """The report's name for a model: target -> before, unlearned-<m> -> after_<m>."""
    if which == "target":
        return "before"
    if which.startswith("unlearned-"):
        return "after_" + which.split("-", 1)[1]
    return which


def resolve(source: Path | str, *, attack: AttackConfig | None = None) -> Subject:
    """The `Subject` a path names (module doc).

    `attack` is the attack section for a model artifact (a run keeps its own); default `AttackConfig()`.

    Raises:
        ArtifactError: If the path is neither a run nor a model artifact, or its provenance is
            incomplete.
    """
    if storage.is_url(source):
        url = str(storage.normalize(source))
        if not url.endswith(".parquet"):
            local, shown = fetch_run_summary(url)
            return _run(local, shown)
        ref = resolve_model_ref(url)
    else:
        source = Path(source)
        summary = source / "summary.json" if source.is_dir() else source
        if summary.suffix == ".json":
            return _run(summary, summary)
        ref = resolve_model_ref(source)
    config = _config_of(ref)
    return Subject(config.model_copy(update={"attack": attack or AttackConfig()}), {phase_name(_which(ref)): ref})


def _run(summary: Path, source: Path | str) -> Subject:
    """The subject of a run: `summary` is its summary.json on this machine, `source` how the user named it."""
    first = resolve_model_ref(source, phase="before")  # checks the summary and the file
    data = json.loads(summary.read_text(encoding="utf-8"))
    config = validate(data.get("config", {}), f"the config stored in {source}")
    config = config.model_copy(update={"run": config.run.model_copy(update={"artifact_root": str(first.root)})})
    phases = [p for p in data.get("models", {}) if p in data["artifacts"]] or ["before"]
    return Subject(config, {p: resolve_model_ref(source, phase=p) for p in phases})


def _which(ref: ArtifactRef) -> str:
    return str(artifacts.read(ref)["model_id"].iloc[0])


def _config_of(ref: ArtifactRef) -> QMUConfig:
    """The config a model artifact was made with, from provenance (module doc)."""
    inputs = model_inputs(ref)
    trained = inputs
    while "train" not in trained:  # unlearned: follow `weights` back to the trained model
        if "weights" not in trained:
            raise ArtifactError(f"{ref.path}: cannot trace the model back to its training run.")
        trained = model_inputs(ArtifactRef(stage="model", key=str(trained["weights"]), root=ref.root))
    split = artifacts.read_metadata(ArtifactRef(stage="splits", key=str(inputs["splits"]), root=ref.root)).inputs
    raw = {
        "run": {"seed": trained["seed"], "artifact_root": str(ref.root)},
        "data": split["data"],
        "model": inputs["model"],
        "train": trained["train"],
    }
    if "unlearn" in inputs:
        raw["unlearn"] = inputs["unlearn"]
    return validate(raw, f"the provenance of {ref.path}")
