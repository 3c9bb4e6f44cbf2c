"""The hardware path: a trained basic QNN's circuits prepared for, and sampled on, quantum devices.

TensorFlow-free (Cirq, cirq-google, qsimcirq, NumPy, pandas only), so circuits can be built,
compiled and sampled without the training stack. The one small interface is a `cirq.Sampler`.
Split by concern, as cirq_google splits devices, noise and engine factories (each layer imports
only the ones below it; ``lint-imports`` checks it):

* `devices`: the Google processors QMU holds offline (``rainbow``, ``weber``, ``willow_pink``):
  `devices.processor` validates a name once and returns a `devices.Processor` (device,
  specification, gate set, median calibration, calibrated properties, circuit duration);
* `noise`: the processor's calibrated noise model and a simple, processor-free one;
* `layout`: rings of coupled qubits, their calibrated cost (`layout.ring_cost`) and the best one;
* `prepare`: concrete per-record circuits (`prepare.resolved_circuits`), placed on a ring,
  compiled to the processor's gate set, validated and measured (`prepare.prepare_model`);
* `storage`: prepared circuits as table rows of Cirq JSON, each distinct moment converted once;
* `transfer` (the arithmetic) and `planning` (analysis, noise per moment, plans) compute exact
  output distributions under any noise model; `emulator.DensityMatrixEmulator` is the
  `cirq.Sampler` drawing shots from them;
* `engine`: the real Quantum Engine's sampler with a deadline, and the project id;
* `samplers`: ALL sampler construction. `samplers.resolve` is the one function that decides on a
  ``hardware.sampler`` kind; its `samplers.SamplerKind` says what the kind compiles for, its
  noise, how shots are drawn and a one-line name, and builds the `cirq.Sampler`;
* `sampling`: batched sampling with retries (`run_circuits`), ⟨Z_i⟩ and its standard error from
  the bits (`z_from_bits`), and the `outputs` rows from ⟨Z⟩ (`outputs_from_z`);
* `evaluate`: the measured records, prepared circuits, exact distributions, shots and measured
  outputs the hardware stages chain; `report`: the hardware and shot-count reports.

The HQNN is not supported: its CNN front end runs on the CPU, the hardware path takes a basic QNN.
"""

from __future__ import annotations
