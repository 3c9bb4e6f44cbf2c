"""A model's circuit as plain Cirq, built in or plug-in: what the export and the hardware path share.

* `cirq_model`: the `CirqModel` of a model section: its circuit, the input symbols in the order
  of `CirqModel.input_values`' columns, the weight symbols in the order of the model's ``theta``,
  and the read-out observables the dense head reads (``Z_i`` on every qubit for QMU's own models,
  the plug-in's `qmu_core.plugins.CircuitModel.readout` for a model plug-in);
* `MeasuredReadout`: how one computational-basis measurement per record yields those read-out
  values: the basis changes to append before measuring, and the value of every observable on
  every outcome (``signs``), so that ``probs @ signs`` (exact) or the mean of ``signs[outcome]``
  over shots (sampled) is the read-out.

Pure Cirq, SymPy and NumPy: no TensorFlow (the hardware path and the export import this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cirq
import numpy as np

from qmu_core import plugins
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.encoding import model_encoding

if TYPE_CHECKING:
    from qmu_core.config import ModelConfig

__all__ = ["CirqModel", "MeasuredReadout", "cirq_model"]


@dataclass(frozen=True)
class CirqModel:
    """A model's circuit, symbols and read-out (module doc).

    Attributes:
        model: The model section it was built for.
        circuit: The full circuit (encoding and ansatz, or the plug-in's), without measurements.
        inputs: Input symbol names, one per column of `input_values`.
        weights: Weight symbol names, in the order of the model's ``theta`` variable.
        readout: The observables the head reads, one value each (`cirq.PauliString` or `cirq.PauliSum`).
        n_features: Features per record the circuit reads (the split's ``x`` width for a basic QNN or plug-in).
    """

    model: ModelConfig
    circuit: cirq.Circuit
    inputs: tuple[str, ...]
    weights: tuple[str, ...]
    readout: tuple[Any, ...]
    n_features: int

    @property
    def qubits(self) -> list[cirq.Qid]:
        """The circuit's qubits, sorted (``cirq.LineQubit.range(n)`` for QMU's own circuits)."""
        return sorted(self.circuit.all_qubits())

    @property
    def is_z_readout(self) -> bool:
        """Whether the read-out is ``Z_i`` on every qubit in order (QMU's own models)."""
        return self.readout == tuple(cirq.Z(q) for q in self.qubits)

    def input_values(self, features: np.ndarray) -> np.ndarray:
        """The input symbols' values per record ``(B, len(inputs))`` (float64) of features ``(B, n_features)``.

        Raises:
            ConfigError: If `features` is not ``(B, n_features)``.
        """
        if not self.model.is_plugin:
            return model_encoding(self.model).values(features, self.model)
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ConfigError(
                f"Model plug-in {self.model.kind!r} reads {self.n_features} features per record (one per input "
                f"symbol), got an array of shape {x.shape}; pass the split's `x` column stacked as "
                f"(records, {self.n_features})."
            )
        return x

    def resolver(self, theta: np.ndarray) -> dict[str, float]:
        """``{weight symbol: value}`` of the trained weights `theta`.

        Raises:
            ConfigError: If `theta` does not have one value per weight symbol.
        """
        values = np.asarray(theta, dtype=np.float64).ravel()
        if values.size != len(self.weights):
            raise ConfigError(
                f"The weights' theta has {values.size} values, but the circuit of model.kind={self.model.kind!r} "
                f"has {len(self.weights)} weight symbols; the weights come from a different model config."
            )
        return {name: float(v) for name, v in zip(self.weights, values, strict=True)}


def cirq_model(model: ModelConfig) -> CirqModel:
    """The `CirqModel` of the model section `model` (a plug-in's is loaded through `qmu_core.plugins`).

    Raises:
        ConfigError: If ``model.kind`` is a plug-in that is not installed or returns an unusable circuit.
    """
    if model.is_plugin:
        built = plugins.circuit_model(model)
        return CirqModel(
            model=model,
            circuit=built.circuit,
            inputs=tuple(str(s) for s in built.input_symbols),
            weights=tuple(str(s) for s in built.weight_symbols),
            readout=tuple(built.readout),
            n_features=len(built.input_symbols),
        )
    circuit, inputs = circuits.build_circuit(
        model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload
    )
    return CirqModel(
        model=model,
        circuit=circuit,
        inputs=tuple(str(s) for s in inputs),
        weights=tuple(str(s) for s in circuits.weight_symbols(model.n_qubits, model.layers)),
        readout=tuple(cirq.Z(q) for q in circuits.qubits(model.n_qubits)),
        n_features=model_encoding(model).width(model.n_qubits),
    )


_TO_Z: dict[cirq.Pauli, Any] = {
    cirq.X: lambda q: [cirq.H(q)],  # H Z H = X
    cirq.Y: lambda q: [cirq.S(q) ** -1, cirq.H(q)],  # S H Z H S^-1 = Y
    cirq.Z: lambda q: [],
}
"""The operations, in time order, after which a Z measurement of qubit q measures the given Pauli."""


def _terms(observable: Any) -> list[cirq.PauliString]:
    return list(observable) if isinstance(observable, cirq.PauliSum) else [observable]


@dataclass(frozen=True)
class MeasuredReadout:
    """The read-out of a `CirqModel` from one measurement of every qubit (module doc).

    Attributes:
        qubits: The measured qubits in logical order (bit ``i`` of an outcome is ``qubits[i]``).
        basis_change: Single-qubit operations to append before measuring (none for ``Z`` read-outs).
        signs: ``(2^n, len(readout))`` float64: every observable's value on every outcome,
            outcome index big-endian over `qubits` (qubit 0 the most significant bit).
        plain: The read-out is ``Z_i`` on every qubit (``signs`` is `circuits.z_signs`).
    """

    qubits: tuple[cirq.Qid, ...]
    basis_change: tuple[cirq.Operation, ...]
    signs: np.ndarray
    plain: bool

    @classmethod
    def of(cls, spec: CirqModel) -> MeasuredReadout:
        """The measurement of `spec`'s read-out.

        Raises:
            ConfigError: If two read-out terms need one qubit measured in different Pauli bases
                (one measurement per record cannot give both), or a coefficient is not real.
        """
        qubits = tuple(spec.qubits)
        n = len(qubits)
        if spec.is_z_readout:
            return cls(qubits, (), circuits.z_signs(n).astype(np.float64), True)
        basis: dict[cirq.Qid, cirq.Pauli] = {}
        for observable in spec.readout:
            for term in _terms(observable):
                for q, pauli in term.items():
                    if basis.setdefault(q, pauli) != pauli:
                        raise ConfigError(
                            f"Model plug-in {spec.model.kind!r}: its read-out measures qubit {q} in both the "
                            f"{basis[q]} and the {pauli} basis; the hardware path measures every qubit once per "
                            "record, in one basis. Use read-out observables whose terms agree on each qubit's "
                            "Pauli (e.g. only Z), or evaluate this model by exact simulation."
                        )
        change = tuple(op for q in sorted(basis) for op in _TO_Z[basis[q]](q))
        zsign = circuits.z_signs(n).astype(np.float64)  # (2^n, n): <Z_i> on each outcome
        index = {q: i for i, q in enumerate(qubits)}
        columns = []
        for observable in spec.readout:
            column = np.zeros(2**n)
            for term in _terms(observable):
                coefficient = complex(term.coefficient)
                if abs(coefficient.imag) > 1e-12:
                    raise ConfigError(
                        f"Model plug-in {spec.model.kind!r}: read-out term {term} has a complex coefficient; "
                        "observables must be Hermitian (real coefficients)."
                    )
                cols = [index[q] for q in term.qubits]
                column += coefficient.real * np.prod(zsign[:, cols], axis=1)
            columns.append(column)
        return cls(qubits, change, np.stack(columns, axis=1), False)

    def from_probs(self, probs: np.ndarray) -> np.ndarray:
        """Exact read-out values ``(records, len(readout))`` of outcome probabilities ``(records, 2^n)``."""
        return np.asarray(probs, dtype=np.float64) @ self.signs

    def from_counts(self, counts: np.ndarray, repetitions: int) -> np.ndarray:
        """Read-out values of outcome counts ``(records, 2^n)`` of `repetitions` shots each."""
        return np.asarray(counts, dtype=np.float64) @ self.signs / repetitions

    def from_bits(self, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read-out values of shots ``(records, repetitions, n)`` and their standard errors.

        For the ``Z_i`` read-out exactly `qmu_core.hardware.sampling.z_from_bits`' numbers:
        ``1 - 2 * mean(bit)`` and ``sqrt((1 - z^2) / repetitions)``; otherwise the mean of each
        observable over the shots and the standard deviation of the mean.
        """
        b = np.asarray(bits)
        if b.ndim != 3 or b.shape[2] != len(self.qubits):
            raise ConfigError(
                f"Expected shots of shape (records, repetitions, {len(self.qubits)}), got {b.shape}; the shots "
                "come from a circuit on a different number of qubits than the model's."
            )
        if self.plain:
            z = 1.0 - 2.0 * b.mean(axis=1, dtype=np.float64)
            return z, np.sqrt(np.clip(1.0 - z**2, 0.0, None) / b.shape[1])
        weights = (1 << np.arange(b.shape[2] - 1, -1, -1)).astype(np.int64)
        values = self.signs[b.astype(np.int64) @ weights]  # (records, repetitions, m)
        return values.mean(axis=1), values.std(axis=1) / np.sqrt(b.shape[1])
