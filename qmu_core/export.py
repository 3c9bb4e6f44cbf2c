"""Portable export of a trained model: Parquet weights, Cirq JSON circuits and a manifest.

An export directory holds:

* ``manifest.json``: format, model settings, classes, symbol names, circuit weights as
  ``{symbol: value}``, the dense head, the pixel scaling and how to predict;
* ``circuit.json``: the full model circuit (encoding + ansatz) as ``cirq.to_json``, with symbols
  ``x_*``/``a_*`` (inputs) and ``w_l_i_j`` (weights);
* ``ansatz.json``: the ansatz alone (for amplitude encoding: simulate it from the normalized
  feature vector as the initial state instead of running the state-preparation part);
* ``weights.parquet``: every model variable (``variable``, ``shape``, ``values``);
* ``features.parquet``: the feature map (PCA ``mean``, ``component`` rows, angle scaling
  ``lo``/``hi``), for the basic QNN.

`predict_with_cirq` rebuilds predictions from these files with NumPy and Cirq only; tests check
it against the model's own predictions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import pandas as pd
import sympy

from qmu_core import artifacts, circuits
from qmu_core.artifacts import ArtifactRef
from qmu_core.errors import ArtifactError

__all__ = ["FORMAT", "export_model", "predict_with_cirq", "resolve_model_ref"]

FORMAT = "qmu-model/1"


def resolve_model_ref(path: Path, *, phase: str = "before") -> ArtifactRef:
    """The model artifact a path names: a model Parquet file, a run dir or its summary.json.

    For a run (directory or summary.json), `phase` picks the model: ``before``, ``after_ga`` or
    ``oracle``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if path.suffix == ".json":
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist; pass a run directory, its summary.json or a model .parquet.")
        models = json.loads(path.read_text())["artifacts"]
        if phase not in models:
            raise ArtifactError(f"{path} has no {phase!r} model; it has {sorted(models)}.")
        path = Path(models[phase])
    if path.suffix != ".parquet" or path.parent.name != "model":
        raise ArtifactError(
            f"{path} is not a model artifact (<root>/model/model-v*.parquet), a run directory or a summary.json."
        )
    return ArtifactRef(stage="model", key=path.stem, root=path.parent.parent)


def _lineage(ref: ArtifactRef) -> dict[str, Any]:
    """Model config, classes and splits key of a model, following unlearning back to training."""
    meta = artifacts.read_metadata(ref)
    inputs = meta["inputs"]
    if "model" not in inputs or "splits" not in inputs:
        raise ArtifactError(f"{ref.path} has no model/splits provenance; it was not written by QMU's model stages.")
    return {"model": inputs["model"], "classes": inputs["classes"], "splits": inputs["splits"], "extra": meta["extra"]}


def export_model(ref: ArtifactRef, out_dir: Path) -> Path:
    """Write the export files for the model artifact `ref` into `out_dir`; returns the manifest path."""
    from qmu_core.config import ModelConfig

    lineage = _lineage(ref)
    model = ModelConfig.model_validate(lineage["model"])
    splits_ref = ArtifactRef(stage="splits", key=lineage["splits"], root=ref.root)
    split_meta = artifacts.read_metadata(splits_ref)
    weights = artifacts.read(ref)
    arrays = {
        r.variable: np.asarray(r.values, dtype=np.float64).reshape([int(s) for s in r.shape])
        for r in weights.itertuples()
    }
    circuit, inputs = circuits.build_circuit(model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload)
    qs = circuits.qubits(model.n_qubits)
    ansatz = circuits.ansatz(qs, model.layers) if not model.reupload else circuit
    wsyms = circuits.weight_symbols(model.n_qubits, model.layers)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "circuit.json").write_text(cirq.to_json(circuit))
    (out_dir / "ansatz.json").write_text(cirq.to_json(ansatz))
    weights[["variable", "shape", "values"]].to_parquet(out_dir / "weights.parquet", index=False)
    files = {"circuit": "circuit.json", "ansatz": "ansatz.json", "weights": "weights.parquet"}
    if model.kind == "basic_qnn":
        from qmu_core.data import feature_map_ref

        artifacts.read(feature_map_ref(splits_ref)).to_parquet(out_dir / "features.parquet", index=False)
        files["features"] = "features.parquet"
    source = split_meta["extra"]["source"]
    manifest = {
        "format": FORMAT,
        "model_id": str(weights["model_id"].iloc[0]),
        "model": model.model_dump(mode="json"),
        "classes": lineage["classes"],
        "image_side": split_meta["extra"]["image_side"],
        "source": source,
        "qubits": f"cirq.LineQubit.range({model.n_qubits}); qubit 0 is the most significant bit",
        "symbols": {"inputs": [str(s) for s in inputs], "weights": [str(s) for s in wsyms]},
        "weights": {str(s): float(v) for s, v in zip(wsyms, arrays["theta"], strict=True)},
        "head": {"w": arrays["head_w"].tolist(), "b": arrays["head_b"].tolist()},
        "files": files,
        "how_to_predict": _recipe(model),
    }
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path


def _recipe(model: Any) -> list[str]:
    steps = ["pixels: image values scaled to [0, 1] (MNIST: /255, sklearn digits: /16), flattened row-major."]
    if model.kind == "basic_qnn":
        steps.append("z = (pixels - mean) @ component.T  (features.parquet; one `component` row per feature).")
        if model.encoding == "angle":
            steps.append("x = clip((z - lo) / (hi - lo), 0, 1) * pi; zero-pad to n_qubits; bind x_i (or x_l_i).")
        else:
            steps.append("v = z zero-padded to 2^n, L2-normalized (all-zero -> |0..0>): the initial state of ansatz.json.")
    else:
        steps.append(
            "h = LeakyReLU_0.01(flatten(MaxPool2(ReLU(Conv5x5_same(2*pixels-1, conv_k) + conv_b))) @ dense_w + dense_b) "
            "(weights.parquet, NHWC)."
        )
        steps.append(
            "angle: x = pi * sigmoid(h), bind x_i; amplitude: v = h / |h| as the initial state of ansatz.json."
        )
    steps.append("Resolve the circuit with manifest['weights'], simulate, read <Z_i> for every qubit i.")
    steps.append("probs = softmax(<Z> @ head.w + head.b); class = classes[argmax(probs)].")
    return steps


def _cnn(pixels: np.ndarray, arrays: dict[str, np.ndarray], side: int) -> np.ndarray:
    img = (2.0 * pixels - 1.0).reshape(-1, side, side)
    padded = np.pad(img, ((0, 0), (2, 2), (2, 2)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5), axis=(1, 2))  # N, side, side, 5, 5
    conv = np.einsum("nhwij,ijf->nhwf", windows, arrays["conv_k"][:, :, 0, :]) + arrays["conv_b"]
    conv = np.maximum(conv, 0.0)
    half = side // 2
    pooled = conv[:, : 2 * half, : 2 * half].reshape(-1, half, 2, half, 2, conv.shape[-1]).max(axis=(2, 4))
    h = pooled.reshape(len(pixels), -1) @ arrays["dense_w"] + arrays["dense_b"]
    return np.where(h > 0, h, 0.01 * h)


def predict_with_cirq(export_dir: Path, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities from an export directory using only NumPy, pandas and Cirq.

    Args:
        export_dir: A directory written by `export_model`.
        pixels: Images scaled to [0, 1], shape (N, side * side).

    Returns:
        Probabilities, shape (N, n_classes).
    """
    export_dir = Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    model = manifest["model"]
    n = model["n_qubits"]
    qs = cirq.LineQubit.range(n)
    weights = {sympy.Symbol(k): v for k, v in manifest["weights"].items()}
    stored = pd.read_parquet(export_dir / "weights.parquet")
    arrays = {r.variable: np.asarray(r.values, dtype=np.float64).reshape(list(r.shape)) for r in stored.itertuples()}
    if model["kind"] == "basic_qnn":
        fm = pd.read_parquet(export_dir / "features.parquet")
        get = {name: np.stack(rows.sort_values("row")["values"].to_numpy()) for name, rows in fm.groupby("name")}
        z = (pixels - get["mean"][0]) @ get["component"].T
        if model["encoding"] == "angle":
            lo, hi = get["lo"][0], get["hi"][0]
            z = np.clip((z - lo) / np.where(hi - lo > 1e-12, hi - lo, 1.0), 0, 1) * np.pi
        width = n if model["encoding"] == "angle" else 2**n
        feats = np.zeros((len(pixels), width))
        feats[:, : z.shape[1]] = z
    else:
        feats = _cnn(pixels, arrays, manifest["image_side"])
        if model["encoding"] == "angle":
            feats = np.pi / (1.0 + np.exp(-feats))
    sim = cirq.Simulator(dtype=np.complex128)
    signs = np.array([[1 - 2 * ((k >> (n - 1 - i)) & 1) for i in range(n)] for k in range(2**n)])
    zs = []
    if model["encoding"] == "angle":
        circuit = cirq.read_json(json_text=(export_dir / "circuit.json").read_text())
        names = manifest["symbols"]["inputs"]
        reps = len(names) // n
        for row in feats:
            values = {sympy.Symbol(s): float(v) for s, v in zip(names, np.tile(row, reps), strict=True)}
            state = sim.simulate(cirq.resolve_parameters(circuit, {**weights, **values}), qubit_order=qs).final_state_vector
            zs.append((np.abs(state) ** 2) @ signs)
    else:
        ansatz = cirq.resolve_parameters(cirq.read_json(json_text=(export_dir / "ansatz.json").read_text()), weights)
        for row in feats:
            norm = np.linalg.norm(row)
            init = row / norm if norm > 0 else np.eye(2**n)[0]
            state = sim.simulate(ansatz, qubit_order=qs, initial_state=init.astype(np.complex128)).final_state_vector
            zs.append((np.abs(state) ** 2) @ signs)
    logits = np.array(zs) @ np.asarray(manifest["head"]["w"]) + np.asarray(manifest["head"]["b"])
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
