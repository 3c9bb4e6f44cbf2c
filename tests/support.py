"""Test helpers: model cases, random inputs and Cirq-simulated reference outputs of a `QNN`."""

from __future__ import annotations

from typing import Any

import numpy as np

from qmu_core.qnn import circuits
from qmu_core.config import ModelConfig

__all__ = ["MODEL_CASES", "cirq_expectations", "random_inputs"]

# ModelConfig overrides (on top of 3 qubits, 2 layers) covering every kind/encoding combination.
MODEL_CASES: list[dict[str, Any]] = [
    {"encoding": "angle"},
    {"encoding": "angle", "reupload": True},
    {"encoding": "amplitude"},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 1},
    {"kind": "hqnn", "encoding": "angle", "layers": 1},
]


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
        resolved = circuits.resolve(qnn.circuit, dict(zip(names, [*row, *theta], strict=True)))
        out.append(circuits.z_expectations(resolved, qnn.cfg.n_qubits))
    return np.array(out)
