"""The hardware path: a trained basic QNN's circuits prepared for, and sampled on, quantum devices.

TensorFlow-free (Cirq, cirq-google, qsimcirq, NumPy, pandas only), so circuits can be built,
compiled and sampled without the training stack. The one small interface is a `cirq.Sampler`:

* `processors`: the Google processors QMU holds offline (``rainbow``, ``weber``, ``willow_pink``):
  devices, gate sets, median-calibration noise models, the virtual engine's and the noisy QVM's
  samplers, a simple noise model, and `ring_cost` (a ring's calibrated error);
* `prepare`: concrete per-record circuits (`resolved_circuits`), the qubit ring with the lowest
  calibrated error (`best_ring`), and `prepare` / `prepare_model`, which place, compile to the
  processor's gate set, validate and measure them; `to_frame` / `from_frame` store them as Cirq JSON;
* `emulator`: `DensityMatrixEmulator`, exact output distributions under any noise model, then shots;
* `samplers`: one `cirq.Sampler` per ``hardware.sampler`` kind, and what each compiles for;
* `sampling`: batched sampling with retries (`run_circuits`), ⟨Z_i⟩ and its standard error from
  the bits (`z_from_bits`), and the `outputs` rows from ⟨Z⟩ (`outputs_from_z`);
* `evaluate`: the measured records, prepared circuits, exact distributions, shots and measured
  outputs the hardware stages chain; `report`: the hardware and shot-count reports.

The HQNN is not supported: its CNN front end runs on the CPU, the hardware path takes a basic QNN.
"""

from __future__ import annotations
