"""The hardware path: a trained basic QNN's circuits prepared for, and sampled on, quantum devices.

TensorFlow-free (Cirq, cirq-google, qsimcirq, NumPy, pandas only), so circuits can be built,
compiled and sampled without the training stack:

* `prepare`: concrete per-record circuits from a `model` weights table and the records'
  features (`resolved_circuits`), an n-qubit ring on a Google device (`device_ring`), and
  `prepare`, which places, compiles (√iSWAP gate set), validates and measures them; `to_frame` /
  `from_frame` store prepared circuits as Cirq JSON rows;
* `sampling`: a seeded, multi-threaded qsim sampler (`qsim_sampler`), batched sampling with
  retries (`run_circuits`), ⟨Z_i⟩ and its standard error from the bits (`z_from_bits`), and the
  `outputs` artifact rows from ⟨Z⟩ (`outputs_from_z`).

The HQNN is not supported: its CNN front end runs on the CPU, the hardware path takes a basic QNN.
"""

from __future__ import annotations
