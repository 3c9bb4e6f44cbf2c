"""Test helpers: model cases, random inputs and Cirq-simulated reference outputs of a `QNN`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cirq
import numpy as np

from qmu_core.config import ModelConfig
from qmu_core.qnn import circuits

__all__ = [
    "EXPORT_CASES",
    "MODEL_CASES",
    "case_id",
    "cirq_expectations",
    "random_inputs",
    "resolve",
    "trained_model_artifact",
    "z_expectations",
]

# ModelConfig overrides (on top of 3 qubits, 2 layers) covering every kind/encoding combination.
MODEL_CASES: list[dict[str, Any]] = [
    {"encoding": "angle"},
    {"encoding": "angle", "reupload": True},
    {"encoding": "amplitude"},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 1},
    {"kind": "hqnn", "encoding": "angle", "layers": 1},
]


def resolve(circuit: cirq.Circuit, values: dict[str, float]) -> cirq.Circuit:
    """Bind symbol values (floats) into a concrete circuit."""
    return cirq.resolve_parameters(circuit, cirq.ParamResolver({k: float(v) for k, v in values.items()}))


def z_expectations(circuit: cirq.Circuit, n_qubits: int) -> np.ndarray:
    """Reference ⟨Z_i⟩ of a resolved circuit with `cirq.Simulator` (complex128, float64 result)."""
    qs = circuits.qubits(n_qubits)
    state = cirq.Simulator(dtype=np.complex128).simulate(circuit, qubit_order=qs).final_state_vector
    return (np.abs(state) ** 2) @ circuits.z_signs(n_qubits).astype(np.float64)


def random_inputs(cfg: ModelConfig, n: int, *, seed: int = 1, image_side: int = 8) -> np.ndarray:
    """Inputs of the right kind for `cfg`: pixels in [-1, 1], amplitudes or angles in [0, pi]."""
    rng = np.random.default_rng(seed)
    if cfg.kind == "hqnn":
        return rng.uniform(-1, 1, size=(n, image_side * image_side)).astype(np.float32)
    if cfg.encoding == "amplitude":
        return rng.normal(size=(n, 2**cfg.n_qubits)).astype(np.float32)
    return rng.uniform(0, np.pi, size=(n, cfg.n_qubits)).astype(np.float32)


def cirq_expectations(qnn: Any, x: np.ndarray) -> np.ndarray:
    """⟨Z_i⟩ of a `QNN` on inputs `x`, recomputed by resolving `qnn.circuit` and `cirq.Simulator`."""
    from qmu_core._tf import tf
    from qmu_core.qnn.backends.base import symbol_values

    values = symbol_values(qnn.cfg, qnn.front_end(tf.constant(x))).numpy()
    theta = qnn.variables["theta"].numpy()
    names = [str(s) for s in qnn.input_symbols] + [str(s) for s in qnn.weight_symbols]
    out = []
    for row in values:
        resolved = resolve(qnn.circuit, dict(zip(names, [*row, *theta], strict=True)))
        out.append(z_expectations(resolved, qnn.cfg.n_qubits))
    return np.array(out)


# ModelConfig cases of the export tests: every kind and encoding at a size Cirq simulates fast.
EXPORT_CASES: list[dict[str, Any]] = [
    {"n_qubits": 4, "layers": 2},
    {"n_qubits": 4, "layers": 2, "reupload": True},
    {"n_qubits": 4, "layers": 2, "encoding": "amplitude"},
    {"n_qubits": 4, "layers": 1, "kind": "hqnn", "encoding": "amplitude"},
    {"n_qubits": 3, "layers": 1, "kind": "hqnn", "encoding": "angle"},
]


def case_id(kw: dict[str, Any]) -> str:
    """A readable pytest id for a ModelConfig case."""
    return "-".join(f"{k}={v}" for k, v in kw.items())


def trained_model_artifact(root: Path, model: ModelConfig, *, epochs: int = 1) -> tuple[Any, Any, Any]:
    """The tiny preset's split and a target model trained for `epochs`, written by the real stages.

    Returns:
        ``(model_ref, splits_table, qnn)``; `qnn` is the model rebuilt from its artifact.
    """
    from qmu_core import artifacts
    from qmu_core.config import TrainConfig
    from qmu_core.presets import preset
    from qmu_core.qnn import jobs
    from qmu_core.splits import read_splits
    from tasks import split_data, train_model

    data = preset("tiny").data
    splits = split_data.task.fn(data=data, features=model.feature_spec, seed=0, source="digits:test", root=root)
    train = TrainConfig(epochs=epochs, batch_size=16)
    ref = train_model.task.fn(splits=splits, model=model, train=train, classes=data.classes, which="target", seed=0)
    table = read_splits(splits)
    return ref, table, jobs.load_model(artifacts.read(ref), table, model, data.classes)
