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

`resolve_many` is what the ``qmu-audit`` flow's form and ``qmu audit`` take: several sources,
each also allowed to be a run's *name* (``<root>/runs/<name>/summary.json``), a path relative to
the artifact root, or a bare model key (``model-v1-<hash>``); none means the latest pipeline run
(`latest_run`). A model artifact listed by a run under its root takes that run's ``attack``
section (else `AttackConfig()`), so pasting a model path from a run's files list reuses the
run's reference models. Several sources must agree on everything the reference models and the
audited records depend on (`REFERENCE_FIELDS`), else `ArtifactError` names the first difference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmu_core import artifacts, storage
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import AttackConfig, QMUConfig, validate
from qmu_core.errors import ArtifactError
from qmu_core.export import fetch_run_summary, model_inputs, resolve_model_ref
from qmu_core.identity import Which

__all__ = [
    "DEFAULT_ROOT",
    "REFERENCE_FIELDS",
    "Subject",
    "latest_run",
    "resolve",
    "resolve_many",
    "run_names",
]

DEFAULT_ROOT = "data/artifacts"
"""The artifact root run names are looked up in when none is given (the config's default)."""

REFERENCE_FIELDS = ("run.seed", "run.artifact_root", "data", "model", "train", "attack")
"""What several sources of one audit must agree on: the reference models and the records they
are scored on depend on these (``data`` up to its deletion request: the first source's marks the
forget set)."""


@dataclass(frozen=True)
class Subject:
    """The models to audit (``{phase: model ref}``) and the config they were made with."""

    config: QMUConfig
    models: dict[str, ArtifactRef]
    origins: tuple[str, ...] = ()
    """One line per source: what it was resolved to (for the log)."""
    attack_given: bool = False
    """The `attack` argument of `resolve` / `resolve_many` was used (a model artifact)."""


def _phase(model_id: str) -> str:
    """The report's name for a stored model.

    Model id target -> before, unlearned-<m> -> after_<m> (`Which.of_model_id`), any other
    model (a reference model) by its own id.
    """
    which = Which.of_model_id(model_id)
    return which.phase if which is not None else model_id


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
    return Subject(
        config.model_copy(update={"attack": attack or AttackConfig()}),
        {_phase(_model_id(ref)): ref},
        (f"model {ref.location}",),
        attack_given=attack is not None,
    )


def _run(summary: Path, source: Path | str) -> Subject:
    """The subject of a run: `summary` is its summary.json on this machine, `source` how the user named it.

    Its models, and so the audit's artifact root, are those below the root the summary lies in
    (`resolve_model_ref`), not the root it was written in: auditing a copy of a root reads and
    writes the copy.
    """
    first = resolve_model_ref(source, phase="before")  # checks the summary and the file
    data = json.loads(summary.read_text(encoding="utf-8"))
    config = validate(data.get("config", {}), f"the config stored in {source}")
    config = config.model_copy(update={"run": config.run.model_copy(update={"artifact_root": str(first.root)})})
    phases = [p for p in data.get("models", {}) if p in data["artifacts"]] or ["before"]
    return Subject(config, {p: resolve_model_ref(source, phase=p) for p in phases}, (f"run {source}",))


def _model_id(ref: ArtifactRef) -> str:
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


# --------------------------------------------------------------------------- several sources, names


def split_sources(text: str) -> list[str]:
    """The sources typed in one text box: several separated by commas or new lines."""
    return [part.strip() for line in text.splitlines() for part in line.split(",") if part.strip()]


def resolve_many(
    sources: Sequence[str | Path], *, root: Path | str = DEFAULT_ROOT, attack: AttackConfig | None = None
) -> Subject:
    """One `Subject` for every source (module doc).

    Sources are run names, run folders, summary.json files, model paths or keys; none (or
    only blank ones): the latest pipeline run under `root`.

    `attack`: the attack section of model artifacts; default: that of the newest run under the
    model's root that lists the model, else `AttackConfig()`. A run keeps its own.

    Raises:
        ArtifactError: If a source names nothing that exists (a name: the error lists the runs
            there), there is no run to default to, or the sources disagree on `REFERENCE_FIELDS`.
    """
    given = [str(s).strip() for s in sources if str(s).strip()]
    if not given:
        summary = latest_run(root)
        return _with_origin(resolve(summary), f"run {summary} (the latest run under {_runs_dir(root)})")
    subjects = [_resolve_one(source, root, attack) for source in given]
    return _merge(subjects, given)


def _runs_dir(root: Path | str) -> str:
    return storage.location(root, "runs") if storage.is_url(root) else str(Path(root) / "runs")


def _summaries(root: Path | str) -> list[tuple[Path, dict[str, Any]]]:
    """Every readable ``runs/*/summary.json`` of `root` (a URL root: its local mirror), newest first."""
    runs = storage.local_dir(root) / "runs"
    found = []
    for path in runs.glob("*/summary.json") if runs.is_dir() else []:
        if path.parent.name.startswith("."):  # a run still writing its folder (`storage.StagedRun`)
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            mtime = path.stat().st_mtime
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict):
            found.append((mtime, path, data))
    found.sort(key=lambda item: (item[0], item[1].parent.name), reverse=True)
    return [(path, data) for _, path, data in found]


def _is_pipeline_run(data: dict[str, Any]) -> bool:
    """Whether `data` is a summary a ``qmu-pipeline`` run wrote.

    Such a summary has a ``before`` model and the unlearning comparison (an audit's own
    summary has no ``comparison``).
    """
    models, listed = data.get("models"), data.get("artifacts")
    return isinstance(models, dict) and "before" in models and isinstance(listed, dict) and "comparison" in listed


def run_names(root: Path | str) -> list[str]:
    """The names of the runs under ``<root>/runs/`` (those with a summary.json), newest first."""
    return [path.parent.name for path, _ in _summaries(root)]


def latest_run(root: Path | str = DEFAULT_ROOT) -> Path:
    """The summary.json of the newest pipeline run under ``<root>/runs/`` (by its mtime).

    Audits' own summaries are skipped: auditing an audit would re-audit the same models under a
    name nobody chose.

    Raises:
        ArtifactError: If there is none; the message says what to type instead.
    """
    summaries = _summaries(root)
    pipeline = [path for path, data in summaries if _is_pipeline_run(data)]
    if pipeline:
        return pipeline[0]
    what = f"only audits: {_listed([p.parent.name for p, _ in summaries])}" if summaries else "it has no runs yet"
    raise ArtifactError(
        f"No source given and no pipeline run to default to in {_runs_dir(root)} ({what}). "
        f"Type a run name, a run folder, a summary.json or a model path ({root}/model/<key>.parquet), "
        "or run the pipeline first (e.g. the smoke deployment)."
    )


def _listed(names: list[str], most: int = 10) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _resolve_one(source: str, root: Path | str, attack: AttackConfig | None) -> Subject:
    """The subject of one source (see `resolve_many`)."""
    if storage.is_url(source):
        return _model(source, attack) if source.endswith(".parquet") else resolve(source, attack=attack)
    path = Path(source).expanduser()
    candidates = [path]
    if not path.is_absolute():
        candidates.append(Path(storage.local_dir(root)) / path)
    found = next((c for c in candidates if c.exists()), None)
    if found is None and len(path.parts) == 1:  # a run name or a model key
        if storage.is_url(root) and not source.startswith("model-"):  # a run of a URL root: fetched
            return resolve(storage.location(root, f"runs/{source}"), attack=attack)
        found = _named(root, source)
        if found is None:
            names, model = run_names(root), f"a model path ({root}/model/<key>.parquet)"
            if names:
                raise ArtifactError(
                    f"No run named {source!r} in {_runs_dir(root)} (runs there: {_listed(names)}). Type one of "
                    f"those names, a run folder, a summary.json or {model}, or set the artifact root the run wrote to."
                )
            raise ArtifactError(
                f"No run named {source!r} in {_runs_dir(root)}: it has no runs yet. Run the pipeline first, set "
                f"the artifact root the run wrote to, or type a run folder, a summary.json or {model}."
            )
    if found is None:
        tried = f" (nor {candidates[1]})" if len(candidates) > 1 else ""
        raise ArtifactError(
            f"{source} does not exist{tried}. Type a run name, a run folder, its summary.json "
            f"or a model path (<root>/model/<key>.parquet) that exists on this machine."
        )
    return _model(found, attack) if found.suffix == ".parquet" else resolve(found, attack=attack)


def _model(source: Path | str, attack: AttackConfig | None) -> Subject:
    """The subject of one model artifact: `attack`, else the attack section of a run listing it."""
    listing = None if attack is not None else _listing_run(resolve_model_ref(source))
    if listing is None:
        return resolve(source, attack=attack)
    summary, run_attack = listing
    subject = resolve(source, attack=run_attack)
    return _with_origin(subject, f"{subject.origins[0]} (attack section of run {summary})")


def _named(root: Path | str, name: str) -> Path | None:
    """The summary.json of the run `name` under `root`, or the model file of key `name`; None if there is none.

    The run is found by its folder, else as the newest run whose summary calls itself `name`
    (a folder name is the run name made safe).
    """
    local = storage.local_dir(root)
    for candidate in (
        local / "runs" / name / "summary.json",
        local / "model" / f"{name.removesuffix('.parquet')}.parquet",
    ):
        if candidate.is_file():
            return candidate
    for path, data in _summaries(root):
        run = data.get("run")
        if isinstance(run, dict) and run.get("name") == name:
            return path
    return None


def _listing_run(ref: ArtifactRef) -> tuple[Path, AttackConfig] | None:
    """The newest run under the model's root whose summary lists the model, and its attack section.

    Pipeline runs come first.
    """
    tail = f"model/{ref.key}.parquet"
    summaries = _summaries(ref.root)
    for path, data in sorted(summaries, key=lambda item: not _is_pipeline_run(item[1])):
        listed = data.get("artifacts")
        if not isinstance(listed, dict) or not any(str(p).endswith(tail) for p in _paths(listed)):
            continue
        raw = data.get("config", {}).get("attack") if isinstance(data.get("config"), dict) else None
        try:
            return path, AttackConfig.model_validate(raw)
        except ValueError:
            continue
    return None


def _paths(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [p for v in value.values() for p in _paths(v)]
    return []


def _with_origin(subject: Subject, origin: str) -> Subject:
    return Subject(subject.config, subject.models, (origin,), subject.attack_given)


def _reference_part(config: QMUConfig) -> dict[str, Any]:
    """The fields of `REFERENCE_FIELDS`, flattened to ``{dotted.name: value}``."""
    from qmu_core.splits import base_data

    raw = config.model_copy(update={"data": base_data(config.data)}).model_dump(mode="json")
    raw["run"]["artifact_root"] = str(storage.normalize(config.run.artifact_root))
    flat: dict[str, Any] = {}
    for field in REFERENCE_FIELDS:
        section, _, name = field.partition(".")
        value = raw[section][name] if name else raw[section]
        if isinstance(value, dict):
            flat.update({f"{field}.{k}": v for k, v in value.items()})
        else:
            flat[field] = value
    return flat


def _merge(subjects: list[Subject], sources: list[str]) -> Subject:
    """One subject of several: the first's config, every model once.

    A clashing phase name gets ``_2``, ``_3``, ...; every source must agree with the first
    on `REFERENCE_FIELDS`.
    """
    first = subjects[0]
    expected = _reference_part(first.config)
    models: dict[str, ArtifactRef] = {}
    for subject, source in zip(subjects, sources, strict=True):
        got = _reference_part(subject.config)
        differ = [k for k in expected if got.get(k) != expected[k]]
        if differ:
            shown = "; ".join(f"{k}: {expected[k]!r} vs {got.get(k)!r}" for k in differ[:3])
            more = f" (and {len(differ) - 3} more)" if len(differ) > 3 else ""
            raise ArtifactError(
                f"{sources[0]} and {source} were not made with the same reference-model config ({shown}{more}), "
                "so one audit cannot score them against the same reference models. Audit them separately."
            )
        for phase, ref in subject.models.items():
            if ref in models.values():
                continue
            name, n = phase, 1
            while name in models:
                n += 1
                name = f"{phase}_{n}"
            models[name] = ref
    origins = tuple(o for s in subjects for o in s.origins)
    return Subject(first.config, models, origins, any(s.attack_given for s in subjects))
