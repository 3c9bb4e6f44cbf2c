"""Hardware flows: the run's models measured through a `cirq.Sampler` with finite shots.

`qmu_hardware` re-evaluates the model before unlearning, every unlearned model and the oracle on
the configured sampler, for a subset of records, and audits the measured outputs beside exact
simulation. `qmu_shots` repeats the measurement for every shot count of ``hardware.shots``;
`qmu_leak_map` does that at every noise setting of ``hardware.noise_map``.
Both reuse the main run's cached models, reference models and attacks.
"""

from __future__ import annotations

import time
from typing import Any

from flows.steps import membership_audit, reference_models, split, train_and_unlearn
from qmu_core import artifacts, housekeeping, workers
from qmu_core.artifacts import ArtifactRef
from qmu_core.attacks.audit import SHOT_AWARE
from qmu_core.config import QMUConfig, SamplerConfig, derive_seed, preset
from qmu_core.hardware import samplers
from qmu_core.hardware.dryrun import check_shot_cap, measured_models
from qmu_core.hardware.engine import engine_timeout
from qmu_core.hardware.evaluate import check_model
from qmu_prefect.flow import qmu_flow
from qmu_prefect.runs import run_name
from qmu_prefect.ui import show_run, track
from tasks import audit_models, model_outputs
from tasks.hardware import (
    drawn_outputs,
    exact_distribution,
    hardware_metrics,
    hardware_outputs,
    hardware_records,
    measure_shots,
    prepare_circuits,
    publish_hardware,
    publish_leak_map,
    shot_aware_scores,
)


def _models_and_audit(config: QMUConfig, repetitions: tuple[int, ...], seeds: int = 1) -> dict[str, Any]:
    """The run's models (repeats ``0..seeds-1``), their simulated outputs and audit, the measured records, and more.

    Also the prepared circuits and exact distribution (under the sampler's noise) of every model to
    measure: the audited ones and, with `hardware.measure_references`, the attacker's references.
    Before anything trains: the model must fit the hardware path, and the shots to measure at
    `repetitions` must fit under `hardware.max_total_shots`.
    """
    s = _models(config, repetitions, seeds)
    return s | _on_sampler(config, s, config.hardware.sampler)


def _models(config: QMUConfig, repetitions: tuple[int, ...], seeds: int = 1) -> dict[str, Any]:
    """`_models_and_audit` up to the sampler: records, shot cap, models, references, simulated outputs, audit."""
    check_model(config.model)
    hw = config.hardware
    base, splits = split(config)
    # The records first: the shot cap counts them before anything trains.
    picked = hardware_records.submit(splits=splits, records_per_group=hw.records_per_group, seed=config.run.seed)
    records = picked.result()
    models, references = measured_models(config, seeds)
    check_shot_cap(config, len(models) + len(references), len(artifacts.read(records)), repetitions)
    models = train_and_unlearn(config, base, splits, 0)
    references = reference_models(config, base)
    track(references["reference_models"].values(), "reference models trained")
    for repeat in range(1, seeds):  # r1/before, r1/oracle, ...: the run's other training seeds
        models |= train_and_unlearn(config, base, splits, repeat)
    common = {"model": config.model, "classes": config.data.classes}
    loss = config.train.loss
    simulated = {
        k: model_outputs.submit(weights=w, splits=splits, loss=loss, label=f"outputs {k}", **common)
        for k, w in models.items()
    }
    audit = membership_audit(config, splits, references, simulated)
    weights, outputs = dict(models), dict(simulated)
    if hw.measure_references:
        weights |= references["reference_models"]
        outputs |= audit["reference_outputs"]
    return {
        "splits": splits,
        "models": models,
        "weights": weights,
        "references": references,
        "simulated": outputs,
        "audit": audit,
        "records": records,
    }


def _on_sampler(config: QMUConfig, s: dict[str, Any], sampler: SamplerConfig) -> dict[str, Any]:
    """Every measured model's prepared circuits for `sampler`'s target and exact distributions under its noise."""
    kind = samplers.resolve(sampler)
    circuits = {
        k: prepare_circuits.submit(weights=w, records=s["records"], model=config.model, target=kind.target)
        for k, w in s["weights"].items()
    }
    exact = {k: exact_distribution.submit(circuits=c, sampler=sampler) for k, c in circuits.items()}
    return {"circuits": circuits, "exact": exact, "kind": kind}


def _measured(config: QMUConfig, s: dict[str, Any], repetitions: int | None) -> dict[str, Any]:
    """Each measured model's outputs with the measured records from `repetitions` shots.

    None: from the exact distribution under the sampler's noise.
    """
    hw = config.hardware
    common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}
    out = {}
    for name, weights in s["weights"].items():
        shots = None
        if repetitions is not None:
            with engine_timeout(hw.timeout_s):  # copied into the task: its Engine calls end within it
                shots = measure_shots.submit(
                    circuits=s["circuits"][name],
                    sampler=hw.sampler,
                    repetitions=repetitions,
                    seed=derive_seed(config.run.seed, "shots", name, repetitions),
                    cpu_threads=hw.cpu_threads,
                    distribution=s["exact"][name] if s["kind"].draws_from_distribution else None,
                )
        out[name] = hardware_outputs.submit(
            exact=s["simulated"][name],
            weights=weights,
            records=s["records"],
            shots=shots,
            distribution=None if repetitions is not None else s["exact"][name],
            **common,
        )
    return out


def _judged(config: QMUConfig, s: dict[str, Any], outputs: dict[str, Any], source: str) -> ArtifactRef:
    """The attacks fitted on the reference models' outputs, scored on the audited models' `outputs`.

    The reference outputs are measured the same way when `hardware.measure_references`, else
    simulated; the metrics are over the measured records.
    """
    names = list(s["references"]["reference_models"])
    own = [outputs.get(n, s["audit"]["reference_outputs"][n]) for n in names]
    audited = {phase: outputs[phase] for phase in s["models"]}
    scores = audit_models(
        splits=s["splits"],
        membership=s["references"]["membership"],
        reference_outputs=own,
        audited=audited,
        attack=config.attack,
        classes=config.data.classes,
        seed=config.run.seed,
    )
    return hardware_metrics(outputs=audited, scores=scores, records=s["records"], attack=config.attack, source=source)


@qmu_flow("qmu-hardware", flow_run_name=run_name("hardware"), rebuild=False)
def qmu_hardware(config: QMUConfig = preset("tiny")) -> str:  # noqa: B008 - the form starts from `tiny`
    """Before, every unlearned model and the oracle measured on `hardware.sampler` with `hardware.repetitions` shots.

    The models of the run's first `hardware.seeds` training seeds; accuracy and the audit beside
    exact simulation, and the deletion table over those seeds. Returns the report's JSON path.
    """
    started = time.time()
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
        workers.configure(config.run.workers)
        s = _models_and_audit(config, (config.hardware.repetitions,), config.hardware.seeds)

        # Measure: shots through the sampler (the emulator draws them from the exact distribution).
        measured = _measured(config, s, config.hardware.repetitions)
        exact = _measured(config, s, None)

        # Audit the measured outputs with the attacks fitted on the reference models; judge the
        # measured records only, beside the same records in exact simulation and at infinite shots.
        metrics = {
            "simulation": _judged(config, s, s["simulated"], "simulation"),
            "exact": _judged(config, s, exact, "exact"),
            "measured": _judged(config, s, measured, "measured"),
        }
        path = publish_hardware(
            metrics=metrics, circuits=s["circuits"], records=s["records"], config=config, started=started
        )
        return show_run(path, refs={"metrics": metrics})


@qmu_flow("qmu-shots", flow_run_name=run_name("shots"), rebuild=False)
def qmu_shots(config: QMUConfig = preset("tiny")) -> str:  # noqa: B008 - the form starts from `tiny`
    """The shot-count study: the metrics against shots, for every repetition count of `hardware.shots`.

    The metrics are MIA AUC, TPR at 1 % FPR, forget-set success and AUC, accuracy and the
    output variance. Returns the study's JSON path.
    """
    started = time.time()
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
        workers.configure(config.run.workers)
        s = _models_and_audit(config, config.hardware.shots)
        outputs = {"exact": _measured(config, s, None)}
        for n in config.hardware.shots:
            outputs[f"shots={n}"] = _measured(config, s, n)
        metrics = {"simulation": _judged(config, s, s["simulated"], "simulation")}
        metrics |= {source: _judged(config, s, by_name, source) for source, by_name in outputs.items()}
        path = publish_hardware(
            metrics=metrics,
            circuits=s["circuits"],
            records=s["records"],
            config=config,
            started=started,
            outputs={source: {p: by_name[p] for p in s["models"]} for source, by_name in outputs.items()},
        )
        return show_run(path, refs={"metrics": metrics})


def _drawn(config: QMUConfig, s: dict[str, Any], on: dict[str, Any], repetitions: int) -> dict[str, Any]:
    """Each measured model's outputs from `repetitions` shots drawn (as counts) from its exact distribution `on`."""
    common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}
    return {
        name: drawn_outputs.submit(
            exact=s["simulated"][name],
            weights=weights,
            records=s["records"],
            distribution=on["exact"][name],
            repetitions=repetitions,
            seed=derive_seed(config.run.seed, "shots", name, repetitions),
            **common,
        )
        for name, weights in s["weights"].items()
    }


def _judged_shot_aware(
    config: QMUConfig, s: dict[str, Any], exact: dict[str, Any], drawn: dict[str, Any], source: str
) -> ArtifactRef:
    """Shot-aware LiRA (`qmu_core.attacks.lira`) on the `drawn` outputs: fitted on the references' `exact` ones.

    Its headline is the configured one if that is a LiRA variant, else offline LiRA.
    """
    attack = config.attack
    if attack.headline not in SHOT_AWARE:
        attack = attack.model_copy(update={"headline": "lira_offline"})
    names = list(s["references"]["reference_models"])
    audited = {phase: drawn[phase] for phase in s["models"]}
    scores = shot_aware_scores(
        splits=s["splits"],
        membership=s["references"]["membership"],
        exact_references=[exact[n] for n in names],
        measured_references=[drawn[n] for n in names],
        audited=audited,
        attack=attack,
        classes=config.data.classes,
    )
    return hardware_metrics(outputs=audited, scores=scores, records=s["records"], attack=attack, source=source)


@qmu_flow("qmu-leak-map", flow_run_name=run_name("leakmap"), rebuild=False)
def qmu_leak_map(config: QMUConfig = preset("tiny")) -> str:  # noqa: B008 - the form starts from `tiny`
    """The leakage map: the audit at every noise setting of `hardware.noise_map` x every shot count of `hardware.shots`.

    Each setting is measured with the emulator (exact noisy distributions, then the shots, drawn as
    counts), beside infinite shots under the same noise; the reference models are measured the
    same way when `hardware.measure_references`. Returns the map's JSON path.
    """
    started = time.time()
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
        workers.configure(config.run.workers)
        hw = config.hardware
        s = _models(config, hw.shots * len(hw.noise_map))
        simulation = _judged(config, s, s["simulated"], "simulation")
        metrics: dict[str, dict[str, ArtifactRef]] = {}
        for setting in hw.noise_map:
            # Per setting: circuits for its processor (shared by its scales), exact distributions under its noise.
            on = _on_sampler(config, s, setting.sampler())
            exact = _measured(config, s | on, None)
            drawn = {n: _drawn(config, s, on, n) for n in hw.shots}
            label = setting.label
            cells = {"exact": _judged(config, s, exact, f"{label} exact")}
            for n, outputs in drawn.items():
                cells[f"shots={n}"] = _judged(config, s, outputs, f"{label} shots={n}")
                if hw.measure_references:  # the shot variance comes from the references measured at n shots
                    cells[f"shots={n} aware"] = _judged_shot_aware(
                        config, s, exact, outputs, f"{label} shots={n} aware"
                    )
            metrics[label] = cells
        path = publish_leak_map(metrics=metrics, simulation=simulation, config=config, started=started)
        return show_run(path, refs={"metrics": simulation})
