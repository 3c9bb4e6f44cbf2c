"""From a trained model to measured `outputs` and audit metrics on a subset of records.

The pieces the hardware flows chain (each one stage in ``tasks/hardware.py``):

* `choose_records`: the records measured: up to ``records_per_group`` per (role, forget) group
  of target members, non-members and test records, drawn with the run's seed;
* `prepare_records`: a model's prepared circuits for those records (`prepare.prepare_model`);
* `exact_distribution`: every circuit's exact output distribution under a noise model (the
  emulator; no shots): the infinite-shot limit of any sampler whose noise is known;
* `measure`: raw shots through any ``cirq.Sampler`` (or drawn from an exact distribution), stored
  as one integer per shot (bit ``i`` of the logical qubit ``i`` is bit ``n-1-i`` of the integer);
* `measured_outputs`: ⟨Z⟩ from the shots (or the distribution), the model's classical head, and the
  `outputs` table of the *whole* split with the measured records' rows replaced, so the audit
  runs unchanged; `subset_metrics` then judges only the measured records.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import cirq
import numpy as np
import pandas as pd

from qmu_core import frames, report
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware import prepare, sampling, storage
from qmu_core.hardware.devices import Processor
from qmu_core.hardware.emulator import DensityMatrixEmulator
from qmu_core.hardware.samplers import SamplerKind
from qmu_core.provenance import AuditFacts
from qmu_core.qnn import circuits
from qmu_core.qnn.cirq_model import MeasuredReadout, cirq_model
from qmu_core.qnn.frontend import model_front_end

__all__ = [
    "EMULATING",
    "MEASURED_ROLES",
    "bits_from_frame",
    "check_model",
    "choose_records",
    "exact_distribution",
    "measure",
    "measure_with",
    "measured_outputs",
    "prepare_records",
    "readout_of",
    "subset_metrics",
    "z_from_distribution",
    "z_from_draws",
]

MEASURED_ROLES = ("target_train", "target_holdout", "test")
"""Roles whose records are measured: members, non-members (the audit) and test records (accuracy)."""


def check_model(model: ModelConfig) -> None:
    """Fail before any training when `model` cannot run on the hardware path.

    Raises:
        ConfigError: For the HQNN (its CNN front end runs on the CPU), or a model plug-in whose read-out
            one measurement per record cannot give (`readout_of`).
    """
    if model.is_plugin:
        readout_of(model)
    if not model_front_end(model).reads_features:
        raise ConfigError(
            f"model.kind={model.kind!r}: the hardware path measures a basic QNN, whose circuit reads the features "
            "directly (the HQNN's CNN front end runs on the CPU). Use the preset `paper_angle` (form: Preset; CLI: "
            "--preset paper_angle), or set model.kind to `basic_qnn` (form: the model section's Kind; CLI: "
            "--set model.kind=basic_qnn)."
        )


def readout_of(model: ModelConfig) -> MeasuredReadout:
    """How the measured bits of `model`'s circuits give its read-out (⟨Z_i⟩, or a plug-in's observables).

    Raises:
        ConfigError: For a plug-in whose read-out needs a qubit measured in two Pauli bases.
    """
    return MeasuredReadout.of(cirq_model(model))


def choose_records(splits: pd.DataFrame, records_per_group: int, seed: int) -> pd.DataFrame:
    """Up to `records_per_group` records of every (role, is_forget) group of `MEASURED_ROLES`.

    Returns the split rows (``sample_id``, ``role``, ``label``, ``is_forget``, ``x``) in split order.
    """
    if records_per_group < 1:
        raise ConfigError(f"hardware.records_per_group={records_per_group}: measure at least one record per group.")
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    rows = splits[splits["role"].isin(MEASURED_ROLES)]
    for _, group in rows.groupby(["role", "is_forget"], sort=True):
        idx = group.index.to_numpy()
        keep.extend(rng.choice(idx, size=min(records_per_group, len(idx)), replace=False).tolist())
    if not keep:
        raise ArtifactError(f"The split has no records with roles {list(MEASURED_ROLES)} to measure.")
    chosen = splits.loc[sorted(keep), ["sample_id", "role", "label", "is_forget", "x"]]
    return chosen.reset_index(drop=True)


def prepare_records(
    weights: pd.DataFrame,
    records: pd.DataFrame,
    model: ModelConfig,
    target: Processor | None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The prepared-circuits table (`storage.to_frame`) of `records` under `weights`, for `target`."""
    x = frames.stack(records["x"], np.float64)
    prepared = prepare.prepare_model(weights, x, model, target=target, progress=progress)
    return storage.to_frame(prepared, records["sample_id"].to_numpy())


EMULATING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
"""At most one `exact_distribution` per core at a time in a process.

A hardware flow submits every measured model's distribution at once (39 for `device_leak`), and
each emulator holds up to `DensityMatrixEmulator`'s 512 MiB of working arrays: 39 at once took
16 GB and gained nothing, as the threads share the cores (and the GIL)."""


def exact_distribution(circuits_frame: pd.DataFrame, noise: cirq.NoiseModel | None) -> pd.DataFrame:
    """``sample_id`` and ``prob`` (the 2^n outcome probabilities, big-endian over logical qubits).

    Waits for a free slot of `EMULATING` first.
    """
    prepared = storage.from_frame(circuits_frame)
    with EMULATING:
        probs = DensityMatrixEmulator(noise).probabilities(prepared.circuits)
    return pd.DataFrame({"sample_id": circuits_frame["sample_id"].to_numpy(), "prob": list(probs)})


def _pack(bits: np.ndarray) -> np.ndarray:
    n = bits.shape[-1]
    weights = (1 << np.arange(n - 1, -1, -1)).astype(np.int64)
    return (bits.astype(np.int64) * weights).sum(axis=-1)


def bits_from_frame(frame: pd.DataFrame, n_qubits: int) -> np.ndarray:
    """``(records, repetitions, n)`` uint8 bits of a `measure` table."""
    shots = frames.stack(frame["shots"], np.int64)
    return ((shots[..., None] >> np.arange(n_qubits - 1, -1, -1)) & 1).astype(np.uint8)


def measure(
    circuits_frame: pd.DataFrame,
    sampler: cirq.Sampler | None,
    repetitions: int,
    *,
    distribution: pd.DataFrame | None = None,
    seed: int = 0,
    batch: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Shots of every prepared circuit: ``sample_id`` and ``shots`` (one integer per shot).

    With `distribution` (an `exact_distribution` table of the same circuits) the shots are drawn
    from it (what the emulator does, without simulating again); otherwise `sampler` runs the
    circuits (`sampling.run_circuits`, batched, transient errors retried).
    """
    ids = circuits_frame["sample_id"].to_numpy()
    if distribution is not None:
        if not np.array_equal(distribution["sample_id"].to_numpy(), ids):
            raise ArtifactError("The exact distribution belongs to other records than the circuits.")
        probs = frames.stack(distribution["prob"], np.float64)
        rng = np.random.default_rng(seed)
        shots = [np.repeat(np.arange(p.size), rng.multinomial(repetitions, p / p.sum())) for p in probs]
        shots = [rng.permutation(s) for s in shots]  # the order of shots carries no information
        return pd.DataFrame({"sample_id": ids, "shots": shots})
    if sampler is None:
        raise ConfigError("measure() needs a sampler or an exact distribution.")
    prepared = storage.from_frame(circuits_frame)
    bits = sampling.run_circuits(prepared.circuits, sampler, repetitions, batch=batch, progress=progress)
    return pd.DataFrame({"sample_id": ids, "shots": list(_pack(bits))})


def _readout(n_qubits: int, readout: MeasuredReadout | None) -> MeasuredReadout:
    if readout is None:
        qs = tuple(circuits.qubits(n_qubits))
        return MeasuredReadout(qs, (), circuits.z_signs(n_qubits).astype(np.float64), True)
    if len(readout.qubits) != n_qubits:
        raise ConfigError(f"The read-out measures {len(readout.qubits)} qubits, not {n_qubits}.")
    return readout


def z_from_distribution(
    distribution: pd.DataFrame, n_qubits: int, readout: MeasuredReadout | None = None
) -> np.ndarray:
    """Exact read-out per record ``(records, m)`` from outcome probabilities over `n_qubits`.

    `readout` (`readout_of`): the model's observables; None: ⟨Z_i⟩ on every qubit (m = n).
    """
    probs = frames.stack(distribution["prob"], np.float64)
    return _readout(n_qubits, readout).from_probs(probs)


def z_from_draws(
    distribution: pd.DataFrame, repetitions: int, seed: int, n_qubits: int, readout: MeasuredReadout | None = None
) -> np.ndarray:
    """Read-out per record ``(records, m)`` of `repetitions` shots drawn from each record's exact distribution.

    `readout` as for `z_from_distribution`.

    The shots are drawn as outcome counts (one multinomial draw per record), the sufficient statistic
    of ⟨Z⟩: the same law as `measure` with `distribution`, without holding one integer per shot
    (100,000 shots of 300 records would be 240 MB per model).
    """
    if repetitions < 1:
        raise ConfigError(f"z_from_draws needs repetitions >= 1; got {repetitions}.")
    measured = _readout(n_qubits, readout)
    probs = frames.stack(distribution["prob"], np.float64)
    rng = np.random.default_rng(seed)
    counts = np.stack([rng.multinomial(repetitions, p / p.sum()) for p in probs]).astype(np.float64)
    return measured.from_counts(counts, repetitions)


def measured_outputs(
    exact: pd.DataFrame,
    weights: pd.DataFrame,
    records: pd.DataFrame,
    z: np.ndarray,
    *,
    classes: Sequence[int],
    loss: str,
) -> pd.DataFrame:
    """The simulated `outputs` table `exact` with the measured records' rows from ⟨Z⟩ `z`.

    `z` is in `records`' order. The other records keep their simulated rows (population records
    some attacks compare against); `subset_metrics` judges the measured records only.
    """
    model_id = str(exact["model_id"].iloc[0])
    rows = sampling.outputs_from_z(z, weights, records, classes=classes, loss=loss, model_id=model_id)
    position = pd.Series(np.arange(len(exact)), index=exact["sample_id"].to_numpy())
    missing = set(rows["sample_id"]) - set(position.index)
    if missing:
        raise ArtifactError(f"Measured records {sorted(missing)[:5]} are not in the model's outputs table.")
    merged = exact.copy()
    at = position.loc[rows["sample_id"].to_numpy()].to_numpy()
    for column in ("prob", "z", "loss", "correct"):
        values = merged[column].to_numpy(copy=True)
        if values.dtype == object:
            for i, v in zip(at, rows[column], strict=True):
                values[i] = v
        else:
            values[at] = rows[column].to_numpy()
        merged[column] = values
    return merged


def subset_metrics(
    outputs: Mapping[str, pd.DataFrame],
    scores: pd.DataFrame,
    audit: AuditFacts,
    sample_ids: Sequence[int],
    *,
    headline: str,
    source: str,
) -> pd.DataFrame:
    """`report.compare` rows (accuracy, every attack) over the measured records, with ``source``."""
    keep = {int(i) for i in sample_ids}
    mine = {k: v[v["sample_id"].isin(keep)] for k, v in outputs.items()}
    table = report.compare(mine, scores[scores["sample_id"].isin(keep)], audit, headline=headline).frame
    table.insert(0, "source", source)
    return table


def measure_with(
    circuits_frame: pd.DataFrame,
    kind: SamplerKind,
    repetitions: int,
    *,
    seed: int,
    cpu_threads: int,
    distribution: pd.DataFrame | None,
    project_id: Callable[[], str | None],
    log: Callable[[str], None],
) -> pd.DataFrame:
    """`measure` through the sampler of `kind` (or, given one, from the exact `distribution`).

    Logs progress with an ETA and the throughput.

    Args:
        circuits_frame: The prepared circuits, as `measure` takes them.
        kind: The sampler kind; its sampler is built here (`SamplerKind.build`) unless `distribution` is given.
        repetitions: Shots per circuit.
        seed: Seed of the sampler, or of the draws from `distribution`.
        cpu_threads: Threads of a local simulator.
        distribution: An `exact_distribution` table of the same circuits to draw the shots from, or None.
        project_id: Called only when the kind needs a project (the real Engine), to read it from the
            environment.
        log: Receives one line per chunk of circuits and a closing line.
    """
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        log(f"measured {done}/{total} circuits ({elapsed:.0f}s, ~{elapsed / done * (total - done):.0f}s left)")

    if distribution is not None:
        table = measure(circuits_frame, None, repetitions, distribution=distribution, seed=seed)
    else:
        project = project_id() if kind.needs_project else None
        sampler = kind.build(seed=seed, cpu_threads=cpu_threads, project_id=project)
        table = measure(circuits_frame, sampler, repetitions, seed=seed, progress=report)
    elapsed = time.monotonic() - started
    log(
        f"{kind.describes}: {len(circuits_frame)} circuits x {repetitions} shots in {elapsed:.1f}s "
        f"({len(circuits_frame) / max(elapsed, 1e-9):.1f} circuits/s)"
    )
    return table
