"""Hardware stages, and the publication of a hardware or shot-count report.

The stages: the measured records, prepared circuits, exact distributions, shots, measured
outputs and their metrics.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from prefect import task
from prefect.runtime import flow_run

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.attacks.audit import shot_aware_audit
from qmu_core.config import AttackConfig, ModelConfig, QMUConfig, SamplerConfig
from qmu_core.hardware import devices, engine, evaluate, leakmap, samplers
from qmu_core.hardware import report as hwreport
from qmu_core.provenance import AuditFacts
from qmu_core.splits import read_splits
from qmu_prefect.log import info
from tasks._stage import stage

PROJECT_SECRET = "qmu-google-cloud-project"
"""Prefect Secret block that may hold the Engine's Google Cloud project (else `GOOGLE_CLOUD_PROJECT`)."""


def _project_id() -> str | None:
    """The Engine project from the environment, else from the Prefect Secret block (never logged)."""
    found = engine.project_id_from_env(os.environ)
    if found:
        return found
    try:
        from prefect.blocks.system import Secret

        return str(Secret.load(PROJECT_SECRET).get()) or None
    except Exception:  # noqa: BLE001 - no such block or no API: the sampler then says what to set
        return None


@stage("hw_records", label="pick records to measure")
def hardware_records(splits: ArtifactRef, records_per_group: int, seed: int) -> Output:
    """The records to measure: up to `records_per_group` per (role, forget) group."""
    chosen = evaluate.choose_records(read_splits(splits).frame, records_per_group, seed)
    info(f"measuring {len(chosen)} records: " + ", ".join(f"{k}={v}" for k, v in chosen["role"].value_counts().items()))
    return Output(chosen)


@stage("circuits", label="prepare circuits")
def prepare_circuits(weights: ArtifactRef, records: ArtifactRef, model: ModelConfig, target: str | None) -> Output:
    """Each record's circuit with the weights resolved, compiled and validated for `target`.

    `target` is a processor's name (`samplers.SamplerKind.target`); None: LineQubits for a simulator.
    """
    processor = None if target is None else devices.processor(target)
    step = max(1, len(artifacts.read(records)) // 4)

    def report(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            info(f"prepared {done}/{total} circuits for {target or 'a simulator'}")

    table = evaluate.prepare_records(artifacts.read(weights), artifacts.read(records), model, processor, report)
    info(
        f"circuits for {target or 'a simulator'}: depth {table['depth_before'].mean():.0f} -> "
        f"{table['depth_after'].mean():.0f}, two-qubit gates {table['two_qubit_before'].mean():.0f} -> "
        f"{table['two_qubit_after'].mean():.0f} (mean per circuit)"
    )
    return Output(table)


@stage("distribution", label="exact distribution")
def exact_distribution(circuits: ArtifactRef, sampler: SamplerConfig) -> Output:
    """Every circuit's exact outcome distribution under the noise of `sampler`'s kind."""
    return Output(evaluate.exact_distribution(artifacts.read(circuits), samplers.resolve(sampler).noise_model()))


@stage("shots", label="measure shots")
def measure_shots(
    circuits: ArtifactRef,
    sampler: SamplerConfig,
    repetitions: int,
    seed: int,
    cpu_threads: int,
    distribution: ArtifactRef | None,
) -> Output:
    """`repetitions` shots of every circuit: through the sampler, or (emulator) drawn from the exact distribution.

    On a real device these are paid-for data: cached like everything else.
    """
    exact = None if distribution is None else artifacts.read(distribution)
    table = evaluate.measure_with(
        artifacts.read(circuits), samplers.resolve(sampler), repetitions, seed=seed, cpu_threads=cpu_threads,
        distribution=exact, project_id=_project_id, log=info,
    )  # fmt: skip
    return Output(table)


@stage("hw_outputs", label="measured outputs")
def hardware_outputs(
    exact: ArtifactRef,
    weights: ArtifactRef,
    records: ArtifactRef,
    shots: ArtifactRef | None,
    distribution: ArtifactRef | None,
    model: ModelConfig,
    classes: tuple[int, ...],
    loss: str,
) -> Output:
    """The model's outputs with the measured records' rows from the read-out (⟨Z⟩, or a plug-in's) of the shots.

    Without shots, from the read-out of the exact distribution.
    """
    chosen = artifacts.read(records)
    readout = evaluate.readout_of(model)
    n = len(readout.qubits)
    if shots is not None:
        z, _ = readout.from_bits(evaluate.bits_from_frame(artifacts.read(shots), n))
    elif distribution is not None:
        z = evaluate.z_from_distribution(artifacts.read(distribution), n, readout)
    else:
        raise ValueError("hardware_outputs needs shots or a distribution.")
    table = evaluate.measured_outputs(
        artifacts.read(exact), artifacts.read(weights), chosen, z, classes=classes, loss=loss
    )
    return Output(table)


@stage("hw_draws", label="drawn outputs")
def drawn_outputs(
    exact: ArtifactRef,
    weights: ArtifactRef,
    records: ArtifactRef,
    distribution: ArtifactRef,
    repetitions: int,
    seed: int,
    model: ModelConfig,
    classes: tuple[int, ...],
    loss: str,
) -> Output:
    """The model's outputs with the measured records' rows from `repetitions` shots drawn from the exact distribution.

    The emulator's shots as outcome counts, not one integer per shot (`evaluate.z_from_draws`).
    """
    chosen = artifacts.read(records)
    readout = evaluate.readout_of(model)
    z = evaluate.z_from_draws(artifacts.read(distribution), repetitions, seed, len(readout.qubits), readout)
    table = evaluate.measured_outputs(
        artifacts.read(exact), artifacts.read(weights), chosen, z, classes=classes, loss=loss
    )
    return Output(table)


@stage("hw_scores", label="shot-aware LiRA")
def shot_aware_scores(
    splits: ArtifactRef,
    membership: ArtifactRef,
    exact_references: list[ArtifactRef],
    measured_references: list[ArtifactRef],
    audited: dict[str, ArtifactRef],
    attack: AttackConfig,
    classes: tuple[int, ...],
) -> Output:
    """LiRA fitted on the references' infinite-shot outputs, widened by the shot variance of their measured ones."""
    read = artifacts.read
    out = shot_aware_audit(
        read(splits), read(membership), [read(r) for r in exact_references],
        [read(r) for r in measured_references], {k: read(v) for k, v in audited.items()}, attack, classes,
    )  # fmt: skip
    info(out.facts.describe() if out.facts else "shot-aware LiRA scored")
    return out


@stage("hw_metrics", label="hardware metrics")
def hardware_metrics(
    outputs: dict[str, ArtifactRef], scores: ArtifactRef, records: ArtifactRef, attack: AttackConfig, source: str
) -> Output:
    """Accuracy and every attack's metrics over the measured records only."""
    ids = artifacts.read(records)["sample_id"].to_numpy()
    tables = {k: artifacts.read(v) for k, v in outputs.items()}
    facts = artifacts.read_facts(scores, AuditFacts)
    table = evaluate.subset_metrics(tables, artifacts.read(scores), facts, ids, headline=attack.headline, source=source)
    return Output(table)


@task(name="publish_hardware", task_run_name="publish report", cache_policy=None, persist_result=False)
def publish_hardware(
    metrics: Mapping[str, ArtifactRef],
    circuits: Mapping[str, ArtifactRef],
    records: ArtifactRef,
    config: QMUConfig,
    started: float,
    outputs: Mapping[str, Mapping[str, ArtifactRef]] | None = None,
) -> str:
    """Write the hardware report (or, with `outputs` by shots, the shot-count study) and log it.

    It goes under ``<root>/runs/<run>/``. Returns the JSON path; the flow shows it in the UI
    (`qmu_prefect.ui.show_run`).
    """
    run_name = str(flow_run.get_name() or time.strftime("hw-%Y%m%d-%H%M%S"))
    published = hwreport.publish_artifacts(
        metrics, circuits, records, config=config, run_name=run_name, outputs=outputs, wall_time_s=time.time() - started
    )
    info("\n" + published.markdown)
    return str(published.summary_path)


@task(name="publish_leak_map", task_run_name="publish leakage map", cache_policy=None, persist_result=False)
def publish_leak_map(
    metrics: Mapping[str, Mapping[str, ArtifactRef]], simulation: ArtifactRef, config: QMUConfig, started: float
) -> str:
    """Write the leakage map (`hw_metrics` by noise setting and source) under ``<root>/runs/<run>/`` and log it."""
    run_name = str(flow_run.get_name() or time.strftime("leakmap-%Y%m%d-%H%M%S"))
    published = leakmap.publish_artifacts(
        metrics, simulation, config=config, run_name=run_name, wall_time_s=time.time() - started
    )
    info("\n" + published.markdown)
    return str(published.summary_path)
