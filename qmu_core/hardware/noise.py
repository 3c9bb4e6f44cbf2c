"""Noise models: a processor's calibrated noise and a plain, processor-free one.

* `noise_model`: ``cirq_google.NoiseModelFromGoogleNoiseProperties`` of a `Processor`'s
  calibrated properties (`qmu_core.hardware.devices.Processor.noise_properties`), cached: after
  every physical moment a thermal (T1/Tphi) channel for the moment's duration on every qubit,
  after each gate its depolarizing remainder and, for two-qubit gates, the coherent entangler
  error; a generalised amplitude-damping readout error before each measurement. Virtual Z gates
  stay noiseless.
* `simple_noise_model`: a plain, processor-free noise model for noisy-qsim runs and the emulator
  (`SimpleNoiseModel`, see there).

TensorFlow-free: Cirq and cirq-google only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from numbers import Real
from typing import Any

import cirq
import cirq_google

from qmu_core.errors import ConfigError
from qmu_core.hardware.devices import Processor

__all__ = ["SimpleNoiseModel", "noise_model", "simple_noise_model"]


@functools.cache
def noise_model(processor: Processor) -> cirq.NoiseModel:
    """The processor's calibrated ``cirq.NoiseModel`` (``NoiseModelFromGoogleNoiseProperties``); cached."""
    return cirq_google.NoiseModelFromGoogleNoiseProperties(processor.noise_properties)


@dataclasses.dataclass(frozen=True)
class SimpleNoiseModel(cirq.NoiseModel):
    """Uniform, processor-free noise: depolarizing per gate, amplitude damping per moment, readout flips.

    Each moment becomes, in order:

    1. ``cirq.bit_flip(readout_error)`` on every qubit a measurement of the moment reads (the
       readout error, before the measurement);
    2. the moment itself;
    3. ``cirq.depolarize(depolarizing, n_qubits=k)`` on the k qubits of every non-measurement
       operation: a single-qubit gate gets the single-qubit channel (X, Y or Z each with
       probability p/3), a two-qubit gate the *two-qubit* depolarizing channel (each of the 15
       non-identity two-qubit Paulis with probability p/15), so p is the total error
       probability of any gate, as an RB/XEB error per gate would be quoted. Measurements are
       not depolarized;
    4. ``cirq.amplitude_damp(amplitude_damping)`` on every qubit of the circuit, busy or idle
       (energy relaxation per moment; after a measurement it only affects later operations).

    A channel with rate 0 is left out. Works with ``qsimcirq.QSimSimulator(noise=...)`` (by
    trajectories) and ``cirq.DensityMatrixSimulator(noise=...)`` (exactly). Build it with
    `simple_noise_model`, which checks the rates.
    """

    depolarizing: float
    amplitude_damping: float
    readout_error: float

    def noisy_moment(self, moment: cirq.Moment, system_qubits: Any) -> cirq.OP_TREE:
        """The moment with the readout flips before it and gate and damping noise after it."""
        measured = [q for op in moment.operations if cirq.is_measurement(op) for q in op.qubits]
        gates = [op for op in moment.operations if op.qubits and not cirq.is_measurement(op)]
        out: list[cirq.Moment] = []
        if self.readout_error > 0 and measured:
            out.append(cirq.Moment(cirq.bit_flip(self.readout_error).on(q) for q in measured))
        out.append(moment)
        if self.depolarizing > 0 and gates:
            out.append(
                cirq.Moment(cirq.depolarize(self.depolarizing, n_qubits=len(op.qubits)).on(*op.qubits) for op in gates)
            )
        if self.amplitude_damping > 0 and system_qubits:
            out.append(cirq.Moment(cirq.amplitude_damp(self.amplitude_damping).on(q) for q in system_qubits))
        return out


def _rate(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"simple_noise_model: {name}={value!r} is not a finite number; pass a rate in [0, 1).")
    rate = float(value)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(
            f"simple_noise_model: {name}={rate} is outside [0, 1); it is a probability per gate, moment or "
            "read-out, and 1 would erase every signal. Pass a rate in [0, 1) (0 turns that channel off)."
        )
    return rate


def simple_noise_model(depolarizing: float, amplitude_damping: float, readout_error: float) -> SimpleNoiseModel | None:
    """A `SimpleNoiseModel` with the given rates, or None when all three are 0 (noiseless).

    Args:
        depolarizing: Total Pauli-error probability p after every gate (single- and two-qubit).
        amplitude_damping: Damping probability gamma of every qubit after every moment.
        readout_error: Probability that a measured bit flips.

    Raises:
        ConfigError: If a rate is not a finite number in [0, 1).
    """
    rates = (
        _rate(depolarizing, "depolarizing"),
        _rate(amplitude_damping, "amplitude_damping"),
        _rate(readout_error, "readout_error"),
    )
    if not any(rates):
        return None
    return SimpleNoiseModel(*rates)
