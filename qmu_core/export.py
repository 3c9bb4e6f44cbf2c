"""Portable export of a trained model: Parquet weights, Cirq JSON circuits and a manifest.

An export directory holds:

* ``manifest.json``: format, model settings, classes, symbol names, circuit weights as
  ``{symbol: value}``, the dense head, the pixel scaling and how to predict;
* ``circuit.json``: the full model circuit (encoding + ansatz) as ``cirq.to_json``, with symbols
  ``x_*``/``a_*`` (inputs) and ``w_l_i_j`` (weights); for a model plug-in, the circuit the
  plug-in builds for the model's config (`qmu_core.qnn.cirq_model`), so the export needs no plug-in;
* ``readout.json``: the read-out observables the dense head reads (``Z_i`` on every qubit, or
  the plug-in's);
* ``ansatz.json``: the ansatz alone (for amplitude encoding: simulate it from the normalized
  feature vector as the initial state instead of running the state-preparation part); not for plug-ins;
* ``weights.parquet``: every model variable (``variable``, ``shape``, ``values``);
* ``features.parquet``: the feature map (PCA ``mean``, ``component`` rows, angle scaling
  ``lo``/``hi``), for the basic QNN and model plug-ins.

docs/export.md documents every file's layout and holds the prediction recipe:
a ``python`` block starting ``# qmu-export-recipe`` that rebuilds the class probabilities from
these files with NumPy, pandas and Cirq only. That block is the recipe's single home;
``tests/test_export_recipe.py`` executes it against the model's own predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cirq

from qmu_core import artifacts, frames, plugins, storage
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.provenance import SplitFacts
from qmu_core.qnn import circuits
from qmu_core.qnn.cirq_model import CirqModel, cirq_model
from qmu_core.qnn.encoding import model_encoding
from qmu_core.qnn.frontend import model_front_end
from qmu_core.splits import feature_map_ref

__all__ = ["FORMAT", "check_out_dir", "export_model", "fetch_run_summary", "resolve_model_ref"]

FORMAT = "qmu-model/2"
"""Version 2 adds readout.json and the manifest's n_features, which the recipe reads.

A version 1 bundle lacks them: export the model again."""


def resolve_model_ref(path: Path | str, *, phase: str = "before") -> ArtifactRef:
    """The model artifact a path names: a model Parquet file, a run dir or its summary.json.

    For a run (directory or summary.json), `phase` picks the model: ``before``, ``after_ga`` or
    ``oracle``. summary.json stores paths relative to the artifact root; they are resolved below
    the root the summary itself sits in (``<root>/runs/<name>/summary.json``), so a run can be
    exported from any directory, and from a copied or moved root.
    `path` may also be a URL below a URL artifact root (``s3://b/qmu/runs/<name>``, its
    summary.json, or ``s3://b/qmu/model/<key>.parquet``): the files are downloaded into the
    root's local mirror (`qmu_core.storage`) and the ref keeps the URL root.

    Raises:
        ArtifactError: If the path is not a model artifact or a readable run summary, or the
            model file does not exist.
    """
    if storage.is_url(path):
        return _resolve_url(str(storage.normalize(path)), phase)
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if path.suffix == ".json":
        path = _model_in_summary(path, phase)
    if path.suffix != ".parquet" or path.parent.name != "model":
        raise ArtifactError(
            f"{path} is not a model artifact (<root>/model/model-v*.parquet), a run directory or a summary.json."
        )
    if not path.is_file():
        raise ArtifactError(
            f"Model artifact {path} does not exist; pass an existing model .parquet or a run directory."
        )
    return ArtifactRef(stage="model", key=path.stem, root=path.parent.parent)


def _resolve_url(url: str, phase: str) -> ArtifactRef:
    """`resolve_model_ref` for a URL below a URL artifact root."""
    if url.endswith(".parquet"):
        root, stage, name = (url.rsplit("/", 2) + ["", ""])[:3]
        if stage != "model" or not storage.is_url(root):
            raise ArtifactError(
                f"{url} is not a model artifact (<root>/model/model-v*.parquet) of a URL artifact root."
            )
    else:
        summary, shown = fetch_run_summary(url)
        root = shown.rsplit("/", 3)[0]
        name = _stored_model(summary, phase, shown=shown).rsplit("/", 1)[-1]
    ref = ArtifactRef(stage="model", key=name.removesuffix(".parquet"), root=root)
    if not artifacts.exists(ref):
        raise ArtifactError(
            f"Model artifact {ref.location} does not exist; pass an existing model .parquet or a run of that root."
        )
    return ref


def fetch_run_summary(url: str) -> tuple[Path, str]:
    """The summary.json of a run below a URL artifact root (its directory or the file itself).

    Downloaded afresh into the root's mirror: ``(local copy, its URL)``.

    Raises:
        ArtifactError: If the URL is not ``<root>/runs/<name>[/summary.json]`` or the summary does not exist.
    """
    url = str(storage.normalize(url))
    shown = url if url.endswith(".json") else f"{url}/summary.json"
    parts = shown.rsplit("/", 3)
    if len(parts) != 4 or parts[1] != "runs" or not storage.is_url(parts[0]):
        raise ArtifactError(
            f"{url} is not a run of a URL artifact root (<root>/runs/<name>[/summary.json]) "
            "or a model artifact (<root>/model/<key>.parquet)."
        )
    remote = storage.remote(parts[0])
    rel = "/".join(parts[1:])
    if remote is None or not remote.download(rel, refresh=True):
        raise ArtifactError(f"{shown} does not exist; pass a run directory, its summary.json or a model .parquet.")
    return remote.local(rel), shown


def _model_in_summary(summary: Path, phase: str) -> Path:
    """The model file a run's summary.json lists for `phase`, below the root the summary itself lies in.

    The summary lies at ``<root>/runs/<name>/summary.json``; the model is read below that root, never the
    root it was written in: a copied, moved or remounted root is read (and audited, written) as itself
    (`storage.in_root`; older summaries' absolute paths are read by their ``<stage>/<file>`` tail).
    """
    stored = _stored_model(summary, phase, shown=str(summary))
    try:
        found = Path(storage.in_root(summary, stored))
    except ArtifactError as exc:
        raise ArtifactError(f"{summary} lists the {phase!r} model as {stored!r}: {exc}") from None
    if not found.is_file():
        raise ArtifactError(
            f"{summary} lists the {phase!r} model as {stored}, but {found} does not exist: it was deleted "
            "or moved. Re-run the run's config with `qmu run ... --refresh` to rebuild it, then export again."
        )
    return found


def _stored_model(summary: Path, phase: str, *, shown: str) -> str:
    """The model path (or URL) a run's summary.json lists for `phase`, as stored.

    `shown` names the summary in errors.
    """
    if not summary.is_file():
        raise ArtifactError(f"{shown} does not exist; pass a run directory, its summary.json or a model .parquet.")
    redo = "Pass the summary.json a `qmu run` wrote (its last line of output), or a model .parquet."
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{shown} is not a readable JSON run summary ({exc}). {redo}") from None
    if not isinstance(data, dict) or "artifacts" not in data:
        raise ArtifactError(f'{shown} has no "artifacts" entry, so it is not a QMU run summary. {redo}')
    models = data["artifacts"]
    if not isinstance(models, dict):
        raise ArtifactError(
            f'{shown}: "artifacts" is a JSON {type(models).__name__}, not an object {{name: path}}; the '
            f"file is damaged. {redo}"
        )
    if phase not in models:
        raise ArtifactError(f"{shown} has no {phase!r} model; it has {sorted(models)}.")
    stored = models[phase]
    if not isinstance(stored, str):
        raise ArtifactError(f'{shown}: "artifacts"[{phase!r}] is {stored!r}, not a file path; the file is damaged.')
    return stored


def model_inputs(ref: ArtifactRef) -> dict[str, Any]:
    """The inputs a model artifact was made from (its provenance), checked to be a model stage's.

    Raises:
        ArtifactError: If the artifact has no model/splits provenance.
    """
    inputs = artifacts.read_metadata(ref).inputs
    if "model" not in inputs or "splits" not in inputs:
        raise ArtifactError(f"{ref.path} has no model/splits provenance; it was not written by QMU's model stages.")
    return inputs


def _lineage(ref: ArtifactRef) -> dict[str, Any]:
    """Model config, classes and splits key of a model, following unlearning back to training."""
    inputs = model_inputs(ref)
    return {"model": inputs["model"], "classes": inputs["classes"], "splits": inputs["splits"]}


def check_out_dir(out_dir: Path) -> Path:
    """`out_dir` if an export may write there: a new or empty directory.

    Raises:
        ArtifactError: If `out_dir` is a file, a non-empty directory, or lies below a file.
    """
    out_dir = Path(out_dir)
    fix = "Choose a new or empty directory."
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"Export destination {out_dir} is an existing file, not a directory. {fix}")
    if out_dir.is_dir():
        entries = sorted(p.name for p in out_dir.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ArtifactError(
                f"Export destination {out_dir} is not empty ({len(entries)} entries: {shown}); an export "
                f"never overwrites files. {fix}"
            )
    probe = out_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ArtifactError(f"Export destination {out_dir} cannot be created: {probe} is a file. {fix}")
    return out_dir


def export_model(ref: ArtifactRef, out_dir: Path) -> Path:
    """Write the export files for the model artifact `ref` into `out_dir`; returns the manifest path.

    Everything is read before the first file is written, so a failed export leaves no partial
    directory behind.

    Raises:
        ArtifactError: If `out_dir` is not a new or empty directory (`check_out_dir`), or an
            artifact of the model's lineage is missing or unreadable.
    """
    out_dir = check_out_dir(out_dir)
    lineage = _lineage(ref)
    model = ModelConfig.model_validate(lineage["model"])
    if model.is_plugin:
        _check_plugin_circuit(ref, model)
    spec = cirq_model(model)
    splits_ref = ArtifactRef(stage="splits", key=lineage["splits"], root=ref.root)
    split_facts = artifacts.read_facts(splits_ref, SplitFacts)
    weights = artifacts.read(ref)
    arrays = frames.arrays(weights)
    front = model_front_end(model)
    ansatz = None
    if not model.is_plugin:  # a plug-in's circuit loads its inputs where it chooses: no separate ansatz
        ansatz = circuits.ansatz(circuits.qubits(model.n_qubits), model.layers) if not model.reupload else spec.circuit
    try:
        theta = spec.resolver(arrays["theta"])
    except (KeyError, ConfigError) as exc:
        raise ArtifactError(f"{ref.location} does not hold the circuit weights of its model config ({exc}).") from None
    feature_map = artifacts.read(feature_map_ref(splits_ref)) if front.reads_features else None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(
            f"Cannot create export destination {out_dir} ({exc}). Choose a writable directory."
        ) from None
    (out_dir / "circuit.json").write_text(cirq.to_json(spec.circuit))
    (out_dir / "readout.json").write_text(cirq.to_json(list(spec.readout)))
    weights[["variable", "shape", "values"]].to_parquet(out_dir / "weights.parquet", index=False)
    files = {"circuit": "circuit.json", "readout": "readout.json", "weights": "weights.parquet"}
    if ansatz is not None:
        (out_dir / "ansatz.json").write_text(cirq.to_json(ansatz))
        files["ansatz"] = "ansatz.json"
    if feature_map is not None:
        feature_map.to_parquet(out_dir / "features.parquet", index=False)
        files["features"] = "features.parquet"
    source = split_facts.source
    manifest = {
        "format": FORMAT,
        "model_id": str(weights["model_id"].iloc[0]),
        "model": model.model_dump(mode="json"),
        "classes": lineage["classes"],
        "image_side": split_facts.image_side,
        "source": source,
        "qubits": _qubits_text(spec),
        "n_features": spec.n_features,
        "symbols": {"inputs": list(spec.inputs), "weights": list(spec.weights)},
        "weights": theta,
        "head": {"w": arrays["head_w"].tolist(), "b": arrays["head_b"].tolist()},
        "files": files,
        "how_to_predict": _recipe(model),
    }
    try:  # strict JSON: NaN or Infinity would make manifest.json unreadable by other tools
        text = json.dumps(manifest, indent=1, allow_nan=False)
    except ValueError as exc:
        raise ArtifactError(
            f"{ref.location} holds weights that are not finite numbers ({exc}); it cannot be exported. "
            "Delete it and its seal, then rerun `qmu run` to rebuild it."
        ) from None
    path = out_dir / "manifest.json"
    path.write_text(text)
    return path


def _check_plugin_circuit(ref: ArtifactRef, model: ModelConfig) -> None:
    """Fail unless the installed plug-in ``model.kind`` builds the circuit the model in `ref` was trained with.

    Raises:
        ArtifactError: If the model's provenance records another circuit (or none) than the plug-in builds now.
    """
    recorded = model_inputs(ref).get("model_plugin")
    current = plugins.fingerprint(model)
    if recorded != current:
        raise ArtifactError(
            f"Cannot export {ref.location}: it was trained with model plug-in {model.kind!r} building the circuit "
            f"with fingerprint {str(recorded)[:12]}, but the installed plug-in now builds {current[:12]}, so its "
            "weights would be exported into a different circuit. Install the plug-in version it was trained "
            "with, or rerun `qmu run` with the installed one (it retrains) and export that run."
        )


def _qubits_text(spec: CirqModel) -> str:
    if spec.model.is_plugin:
        shown = ", ".join(str(q) for q in spec.qubits)
        return f"the plug-in's cirq.LineQubit s ({shown}); sorted, the first is the most significant bit"
    return f"cirq.LineQubit.range({spec.model.n_qubits}); qubit 0 is the most significant bit"


def _recipe(model: ModelConfig) -> list[str]:
    """How to predict from the export's files, in words: the front end's and the encoding's steps."""
    steps = ["pixels: image values scaled to [0, 1] (MNIST: /255, sklearn digits: /16), flattened row-major."]
    steps += model_front_end(model).recipe(model_encoding(model))
    if model.is_plugin:
        steps.append(
            "Bind feature i to symbols.inputs[i] (model plug-in: no other encoding; it loads them where it chooses)."
        )
        readout = "read the expectation of every observable in readout.json (the model plug-in's read-out)"
    else:
        readout = "read <Z_i> for every qubit i (readout.json)"
    steps.append(f"Resolve the circuit with manifest['weights'], simulate, {readout}.")
    steps.append("probs = softmax(read-out @ head.w + head.b); class = classes[argmax(probs)].")
    return steps
