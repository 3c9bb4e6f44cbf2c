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

__all__ = ["MAX_ERROR", "NO_DECAY_NS", "SimpleNoiseModel", "noise_model", "scaled_properties", "simple_noise_model"]


def noise_model(processor: Processor, scale: float = 1.0) -> cirq.NoiseModel:
    """The processor's calibrated ``cirq.NoiseModel`` (``NoiseModelFromGoogleNoiseProperties``); one per scale.

    `scale` multiplies every error of the calibration (`scaled_properties`); 1: as calibrated. The
    same object for the same processor and scale, however it is asked for (the emulator caches by it).
    A scale of 0 is ``cirq.NO_NOISE`` (cirq's read-out channel divides by a zero error rate).
    """
    return cirq.NO_NOISE if scale == 0 else _noise_model(processor, float(scale))


@functools.cache
def _noise_model(processor: Processor, scale: float) -> cirq.NoiseModel:
    props = processor.noise_properties if scale == 1.0 else scaled_properties(processor.noise_properties, scale)
    return cirq_google.NoiseModelFromGoogleNoiseProperties(props)


NO_DECAY_NS = 1e30
"""T1 or Tphi of a noiseless qubit (a scale of 0): no decay within any circuit."""

MAX_ERROR = 0.5
"""A scaled error probability (read-out flip, Pauli error per gate) is cut here: past it, noise stops being noise."""


def scaled_properties(props: cirq_google.GoogleNoiseProperties, scale: float) -> cirq_google.GoogleNoiseProperties:
    """`props` with every error times `scale`: a device `scale` times as noisy (0: noiseless).

    The Pauli error of every gate and both read-out error rates are multiplied (each cut at
    `MAX_ERROR`); the decoherence rates 1/T1 and 1/Tphi are multiplied (T1 and Tphi divided; at 0,
    `NO_DECAY_NS`: cirq's thermal channel turns an infinite time into NaN); the two-qubit gates'
    coherent entangler errors (PhasedFSim angles) are multiplied. Gate durations stay.

    Raises:
        ConfigError: For a negative or non-finite `scale`.
    """
    if not (math.isfinite(scale) and scale >= 0):
        raise ConfigError(f"noise scale {scale!r}: pass a finite factor >= 0 (1: as calibrated, 0: noiseless).")

    def slower(t: float) -> float:
        return NO_DECAY_NS if scale == 0 else min(t / scale, NO_DECAY_NS)

    def worse(p: float) -> float:
        return min(p * scale, MAX_ERROR)

    return props.with_params(
        t1_ns={q: slower(t) for q, t in props.t1_ns.items()},
        tphi_ns={q: slower(t) for q, t in props.tphi_ns.items()},
        readout_errors={q: [worse(e) for e in errs] for q, errs in props.readout_errors.items()},
        gate_pauli_errors={op: worse(e) for op, e in props.gate_pauli_errors.items()},
        fsim_errors={
            op: cirq.PhasedFSimGate(
                theta=g.theta * scale, zeta=g.zeta * scale, chi=g.chi * scale, gamma=g.gamma * scale, phi=g.phi * scale
            )
            for op, g in props.fsim_errors.items()
        },
    )


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
