"""Sampling prepared circuits and turning the bits into ⟨Z⟩ and `outputs` rows (NumPy, no TensorFlow).

* `run_circuits`: raw bits ``(records, repetitions, n_qubits)`` of circuits measured into key
  ``"z"`` (`qmu_core.hardware.prepare`), through ``sampler.run_batch`` in chunks, a chunk
  retried on transient errors (`TRANSIENT_ERRORS`);
* `z_from_bits`: ⟨Z_i⟩ ``= 1 - 2 * mean(bit_i)`` and its standard error ``sqrt((1 - z^2) / shots)``;
* `outputs_from_z`: the `outputs` artifact rows (`qmu_core.artifacts.SCHEMAS["outputs"]`) from
  ⟨Z⟩: ``prob = softmax(z @ head_w + head_b)``, the loss and whether the argmax is right. The
  losses are the NumPy twins of `qmu_core.qnn.training.per_record_loss`.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence

import cirq
import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware.prepare import MEASUREMENT_KEY

__all__ = [
    "LOSSES",
    "TRANSIENT_ERRORS",
    "outputs_from_z",
    "per_record_loss",
    "run_circuits",
    "softmax",
    "z_from_bits",
]

LOSSES = ("bce_sum", "cross_entropy")
_EPS = 1e-7  # the probability clip of qmu_core.qnn.training.per_record_loss


def _transient_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    try:
        api = importlib.import_module("google.api_core.exceptions")
    except ImportError:  # cirq-google not installed: only the built-in network errors
        return tuple(found)
    names = ("ServiceUnavailable", "DeadlineExceeded", "InternalServerError", "TooManyRequests", "Aborted")
    found += [getattr(api, name) for name in names if hasattr(api, name)]
    return tuple(found)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = _transient_errors()
"""Errors after which a chunk is sent again: the built-in `TimeoutError` and `ConnectionError`
(and its subclasses), and Google API errors that mean "try later" (HTTP 503 ``ServiceUnavailable``,
504 ``DeadlineExceeded``, 500 ``InternalServerError``, 429 ``TooManyRequests``, 409 ``Aborted``).
Anything else (an invalid circuit, a permission error) fails at once."""


def run_circuits(
    circuits: Sequence[cirq.Circuit],
    sampler: cirq.Sampler,
    repetitions: int,
    *,
    batch: int = 100,
    retries: int = 2,
    backoff: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Sample every circuit `repetitions` times; the raw bits of measurement key ``"z"``.

    Args:
        circuits: Circuits ending with ``cirq.measure(*qubits, key="z")`` (`prepare`), all
            measuring the same number of qubits.
        sampler: Any ``cirq.Sampler`` (`qmu_core.hardware.samplers`: qsim, a virtual or real Engine
            processor's sampler, the emulator).
        repetitions: Shots per circuit.
        batch: Circuits per ``run_batch`` call.
        retries: How often a chunk is sent again after a `TRANSIENT_ERRORS` error.
        backoff: Seconds to wait before the first retry, doubled for each further one.
        progress: Called as ``progress(done, total)`` after every chunk.

    Returns:
        ``(records, repetitions, n_qubits)`` uint8 bits, bit ``i`` the logical qubit ``i``.

    Raises:
        ConfigError: For non-positive `repetitions`, `batch` or negative `retries`.
        ArtifactError: If a result lacks key ``"z"`` or has another shape than expected.
    """
    if repetitions < 1 or batch < 1 or retries < 0:
        raise ConfigError(
            f"run_circuits needs repetitions >= 1, batch >= 1 and retries >= 0; got {repetitions}, {batch}, {retries}."
        )
    out: list[np.ndarray] = []
    for start in range(0, len(circuits), batch):
        chunk = list(circuits[start : start + batch])
        for attempt in range(retries + 1):
            try:
                results = sampler.run_batch(chunk, repetitions=repetitions)
                break
            except TRANSIENT_ERRORS:
                if attempt == retries:
                    raise
                time.sleep(backoff * 2**attempt)
        if len(results) != len(chunk):
            raise ArtifactError(f"The sampler returned {len(results)} results for {len(chunk)} circuits.")
        for per_circuit in results:
            (result,) = per_circuit
            if MEASUREMENT_KEY not in result.measurements:
                raise ArtifactError(
                    f"A sampled circuit has no measurement key {MEASUREMENT_KEY!r} (keys: "
                    f"{sorted(result.measurements)}); sample circuits from qmu_core.hardware.prepare."
                )
            bits = np.asarray(result.measurements[MEASUREMENT_KEY], dtype=np.uint8)
            if bits.shape[0] != repetitions:
                raise ArtifactError(f"A circuit returned {bits.shape[0]} shots, {repetitions} were asked for.")
            out.append(bits)
        if progress is not None:
            progress(len(out), len(circuits))
    if not out:
        return np.zeros((0, repetitions, 0), dtype=np.uint8)
    widths = {b.shape[1] for b in out}
    if len(widths) != 1:
        raise ArtifactError(f"The circuits measure different numbers of qubits {sorted(widths)}.")
    return np.stack(out)


def z_from_bits(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """⟨Z_i⟩ per record and qubit from bits ``(records, repetitions, n)``, and its standard error.

    Returns:
        ``(z, stderr)``, both ``(records, n)`` float64: ``z = 1 - 2 * mean(bit)``,
        ``stderr = sqrt((1 - z^2) / repetitions)`` (the binomial estimate; 0 where all shots agree).
    """
    b = np.asarray(bits)
    if b.ndim != 3:
        raise ConfigError(f"z_from_bits expects (records, repetitions, qubits) bits, got shape {b.shape}.")
    z = 1.0 - 2.0 * b.mean(axis=1, dtype=np.float64)
    stderr = np.sqrt(np.clip(1.0 - z**2, 0.0, None) / b.shape[1])
    return z, stderr


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (float64), stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def per_record_loss(probs: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """Loss per record ``(B,)``: NumPy twin of `qmu_core.qnn.training.per_record_loss`.

    ``bce_sum``: sum over classes of binary cross-entropy on the probabilities;
    ``cross_entropy``: ``-log p[y]``. Probabilities are clipped to ``[1e-7, 1 - 1e-7]``.
    """
    if kind not in LOSSES:
        raise ConfigError(f"loss={kind!r} is not supported; use one of {list(LOSSES)}.")
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0 - _EPS)
    onehot = np.eye(p.shape[1])[y]
    if kind == "bce_sum":
        return -np.sum(onehot * np.log(p) + (1.0 - onehot) * np.log(1.0 - p), axis=1)
    return -np.sum(onehot * np.log(p), axis=1)


def outputs_from_z(
    z: np.ndarray,
    weights: pd.DataFrame,
    frame_rows: pd.DataFrame,
    *,
    classes: Sequence[int],
    loss: str,
    model_id: str,
) -> pd.DataFrame:
    """`outputs` artifact rows from ⟨Z⟩ (sampled or exact) of the records of `frame_rows`.

    Args:
        z: ⟨Z_i⟩ per record ``(records, n_qubits)`` (a plug-in's read-out values), in `frame_rows`' order.
        weights: The model table (its ``head_w`` and ``head_b`` make the head).
        frame_rows: Split rows with ``sample_id``, ``role``, ``label`` and ``is_forget``.
        classes: The model's classes (head output ``k`` is ``classes[k]``).
        loss: ``bce_sum`` or ``cross_entropy`` (`per_record_loss`).
        model_id: The model's id, copied into every row.
    """
    z = np.asarray(z, dtype=np.float64)
    found = frames.arrays(weights)
    if "head_w" not in found or "head_b" not in found:
        raise ArtifactError(f"The weights table has variables {sorted(found)}, no dense head (head_w, head_b).")
    head_w, head_b = found["head_w"], found["head_b"]
    if z.ndim != 2 or z.shape[0] != len(frame_rows) or z.shape[1] != head_w.shape[0]:
        raise ConfigError(
            f"z has shape {z.shape}; it needs one row per record ({len(frame_rows)}) and one column per "
            f"read-out value the head reads ({head_w.shape[0]}: ⟨Z_i⟩ per qubit, or a plug-in's observables)."
        )
    if head_w.shape[1] != len(classes):
        raise ConfigError(f"The head has {head_w.shape[1]} outputs but {len(classes)} classes were given.")
    y = frames.class_index(frame_rows["label"].to_numpy(), classes)
    probs = softmax(z @ head_w + head_b)
    return pd.DataFrame(
        {
            "model_id": model_id,
            "sample_id": frame_rows["sample_id"].to_numpy().astype(np.int64),
            "role": frame_rows["role"].to_numpy(),
            "label": frame_rows["label"].to_numpy().astype(np.int64),
            "is_forget": frame_rows["is_forget"].to_numpy().astype(bool),
            "prob": list(probs.astype(np.float32)),
            "z": list(z.astype(np.float32)),
            "loss": per_record_loss(probs, y, loss).astype(np.float64),
            "correct": probs.argmax(axis=1) == y,
        }
    )
