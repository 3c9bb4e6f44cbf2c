"""What a hardware run would measure and send, without training, sampling or sending anything.

`plan(config, study=...)` splits the data (cheap: no model trains), picks the records to measure
as the flows do (`evaluate.choose_records`), and compiles one representative circuit (random
weights; the compiled structure does not depend on their values) for the sampler's processor. It
counts:

* circuits: (audited models + measured reference models) x records, and the shots of each;
* jobs: ``run_batch`` calls of `sampling.run_circuits` (`BATCH` circuits per call) per measured
  shot count;
* the compiled circuit's two-qubit gates and depth;
* the estimated device time: every shot takes the circuit's duration (each moment as long as its
  slowest gate, from the processor's gate durations) plus `REPETITION_OVERHEAD_S` for reset and
  read-out (an assumption, not a measured number); queueing and per-job overhead are not included.

`Plan.lines()` is what ``qmu hardware --dry-run`` prints; `leak_map_lines` what ``qmu leak-map
--dry-run`` prints: per noise setting its circuits and an emulator time measured on a few. For
``google_engine`` it says what would be sent (processor, run name, device configuration, batches)
and whether the project is set, never its value: credentials never appear in QMU's output.
`check_shot_cap` refuses a run whose total shots exceed ``hardware.max_total_shots`` (the flows call
it before any circuit is measured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import pandas as pd

from qmu_core import splits as splits_module
from qmu_core.config import QMUConfig
from qmu_core.errors import ConfigError
from qmu_core.hardware import engine, evaluate, prepare, samplers
from qmu_core.identity import lineup
from qmu_core.membership import reference_names
from qmu_core.qnn.cirq_model import cirq_model

__all__ = [
    "BATCH",
    "REPETITION_OVERHEAD_S",
    "Plan",
    "check_shot_cap",
    "leak_map_lines",
    "measured_models",
    "plan",
    "total_shots",
]

BATCH = 100
"""Circuits per ``run_batch`` call (`qmu_core.hardware.sampling.run_circuits`' default): one Engine job each."""

REPETITION_OVERHEAD_S = 100e-6
"""Assumed time per shot beyond the circuit (qubit reset and read-out cycle): an estimate, not a measurement."""


def total_shots(n_models: int, n_records: int, repetitions: tuple[int, ...]) -> int:
    """Shots a run measures: every model's circuit of every record, at each shot count."""
    return n_models * n_records * sum(repetitions)


def measured_models(config: QMUConfig, seeds: int = 1) -> tuple[list[str], list[str]]:
    """The models a hardware run measures: the audited ones of repeats ``0..seeds-1`` (by phase) and the references."""
    references = reference_names(config.attack) if config.hardware.measure_references else []
    return [w.phase for r in range(seeds) for w in lineup(config.unlearn.methods, r)], references


def check_shot_cap(config: QMUConfig, n_models: int, n_records: int, repetitions: tuple[int, ...]) -> None:
    """Raise `ConfigError` when the run would measure more shots than ``hardware.max_total_shots`` (0: no cap)."""
    cap = config.hardware.max_total_shots
    total = total_shots(n_models, n_records, repetitions)
    if cap and total > cap:
        raise ConfigError(
            f"This run would measure {total:,} shots ({n_models} models x {n_records} records x "
            f"{' + '.join(str(r) for r in repetitions)} shots), over hardware.max_total_shots={cap:,}; nothing was "
            "sent. Lower hardware.records_per_group, hardware.repetitions or hardware.shots, set "
            "hardware.measure_references=false, or raise the cap. `qmu hardware --dry-run` shows the plan."
        )


@dataclass
class Plan:
    """What a hardware run would do (module doc)."""

    sampler: str
    kind: str
    processor: str | None
    models: list[str]
    references: list[str]
    records: dict[str, int]
    repetitions: tuple[int, ...]
    two_qubit_gates: int
    depth: int
    circuit_s: float | None
    engine: dict[str, Any] | None = None
    cap: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        """Records measured per model."""
        return sum(self.records.values())

    @property
    def circuits(self) -> int:
        """Circuits per shot count: one per measured model and record."""
        return (len(self.models) + len(self.references)) * self.n_records

    @property
    def shots(self) -> int:
        """Shots over the whole run."""
        return total_shots(len(self.models) + len(self.references), self.n_records, self.repetitions)

    @property
    def jobs(self) -> int:
        """``run_batch`` calls: per model and shot count, its circuits in chunks of `BATCH`."""
        per_model = -(-self.n_records // BATCH)
        return (len(self.models) + len(self.references)) * per_model * len(self.repetitions)

    @property
    def device_s(self) -> float | None:
        """Estimated device time in seconds (module doc); None without a processor's gate durations."""
        if self.circuit_s is None:
            return None
        return self.shots * (self.circuit_s + REPETITION_OVERHEAD_S)

    def lines(self) -> list[str]:
        """The plan as the CLI prints it."""
        device = f"{self.device_s:,.1f} s" if self.device_s is not None else "n/a (no processor: a simulator)"
        out = [
            f"sampler: {self.sampler}",
            f"models measured: {len(self.models)} audited ({', '.join(self.models)})"
            + (f" + {len(self.references)} reference models" if self.references else ""),
            f"records per model: {self.n_records} (" + ", ".join(f"{k}={v}" for k, v in self.records.items()) + ")",
            f"circuits: {self.circuits:,} per shot count; shots per circuit: "
            + ", ".join(f"{r:,}" for r in self.repetitions),
            f"total shots: {self.shots:,}"
            + (
                f" (cap hardware.max_total_shots={self.cap:,}: {'over' if self.shots > self.cap else 'within'})"
                if self.cap
                else " (no cap: hardware.max_total_shots=0)"
            ),  # fmt: skip
            f"jobs (run_batch calls of up to {BATCH} circuits): {self.jobs:,}",
            f"compiled circuit: {self.two_qubit_gates} two-qubit gates, depth {self.depth}"
            + (f" on {self.processor}" if self.processor else " (LineQubits, not compiled)"),
            f"estimated device time: {device}"
            + (
                f" ({self.circuit_s * 1e6:.2f} us per circuit + {REPETITION_OVERHEAD_S * 1e6:.0f} us per shot, assumed)"
                if self.circuit_s is not None
                else ""
            ),  # fmt: skip
        ]
        if self.engine is not None:
            out.append("would send to the Quantum Engine:")
            out += [f"  {k}: {v}" for k, v in self.engine.items()]
        out += [f"note: {n}" for n in self.notes]
        out.append("nothing was trained, sampled or sent (dry run)")
        return out


def _duration_s(circuit: cirq.Circuit, durations: dict[Any, cirq.Duration] | None) -> float | None:
    """The circuit's duration: each moment as long as its slowest gate (None without durations)."""
    if not durations:
        return None
    total = 0.0
    for moment in circuit:
        longest = 0.0
        for op in moment:
            found = [d for family, d in durations.items() if op in family]
            longest = max(longest, max((d.total_nanos() for d in found), default=0.0))
        total += longest
    return total * 1e-9


def _one_circuit(config: QMUConfig, x: np.ndarray, kind: samplers.SamplerKind) -> prepare.Prepared:
    """One record's circuit with random weights, prepared for the kind's processor."""
    model = config.model
    n = len(cirq_model(model).weights)
    values = np.random.default_rng(0).uniform(-np.pi, np.pi, size=n)
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n]], "values": [values]})
    resolved = prepare.resolved_circuits(weights, x[None, :], model)
    return prepare.prepare(resolved, target=kind.processor)


def plan(config: QMUConfig, *, study: bool = False, environ: dict[str, str] | None = None) -> Plan:
    """What ``qmu hardware`` (or ``qmu shots``, `study`) would measure with `config` (module doc).

    Raises:
        ConfigError: For a model the hardware path cannot run (`evaluate.check_model`).
    """
    evaluate.check_model(config.model)
    hw = config.hardware
    base = splits_module.split_roles(config.data, config.model.feature_spec, seed=config.run.seed)
    frame = splits_module.apply_request(base, config.data).frame if config.data.forget == "samples" else base.frame
    chosen = evaluate.choose_records(frame, hw.records_per_group, config.run.seed)
    records: dict[str, int] = {}
    for role, forget in zip(chosen["role"], chosen["is_forget"], strict=True):
        name = f"{role}{' forget' if forget else ''}"
        records[name] = records.get(name, 0) + 1
    kind = samplers.resolve(hw.sampler)
    prepared = _one_circuit(config, np.asarray(chosen["x"].iloc[0], dtype=np.float64), kind)
    stats = prepared.stats[0]
    metadata = kind.processor.device.metadata if kind.processor is not None else None
    durations = getattr(metadata, "gate_durations", None)
    models, references = measured_models(config, 1 if study else hw.seeds)
    out = Plan(
        sampler=kind.describes,
        kind=kind.name,
        processor=kind.target,
        models=models,
        references=references,
        records=records,
        repetitions=tuple(hw.shots) if study else (hw.repetitions,),
        two_qubit_gates=stats.two_qubit_after,
        depth=stats.depth_after,
        circuit_s=_duration_s(prepared.circuits[0], durations),
        cap=hw.max_total_shots,
    )
    if study:
        out.notes.append("the study also computes the exact (infinite-shot) outputs: no shots, no jobs")
    if kind.draws_from_distribution:
        out.notes.append(f"{kind.name} draws its shots from exact distributions on this machine: no device time")
    if kind.needs_project:
        project = engine.project_id_from_env(environ)
        out.engine = {
            "processor_id": getattr(hw.sampler, "processor_id", "?"),
            "run_name": getattr(hw.sampler, "run_name", "") or "(the processor's default)",
            "device_config_name": getattr(hw.sampler, "device_config_name", "") or "(the processor's default)",
            "project": f"from {engine.PROJECT_ENV} ({'set' if project else 'NOT SET: the run would stop here'})",
            "batches": f"{out.jobs:,} run_batch calls of up to {BATCH} circuits, "
            + " / ".join(f"{r:,}" for r in out.repetitions)
            + " repetitions each",
        }
    return out


def leak_map_lines(config: QMUConfig) -> list[str]:
    """What ``qmu leak-map`` would compute: per noise setting, its circuits and an estimated emulator time.

    The time: three representative circuits' exact distributions timed on this machine (after one
    untimed, which builds the noise model's caches), per circuit, times the circuits. Records of a
    re-uploading circuit differ throughout, so each costs about as much; other circuits share
    their suffix and cost less (the estimate is then an upper bound).
    """
    import time

    from qmu_core.hardware.emulator import DensityMatrixEmulator

    hw = config.hardware
    first = plan(config.model_copy(update={"hardware": hw.model_copy(update={"sampler": hw.noise_map[0].sampler()})}))
    n_models = len(first.models) + len(first.references)
    out = [
        f"models measured: {len(first.models)} audited ({', '.join(first.models)})"
        + (f" + {len(first.references)} reference models" if first.references else ""),
        f"records per model: {first.n_records}; shot counts: "
        + ", ".join(f"{r:,}" for r in hw.shots)
        + " and infinite, drawn from exact distributions (emulator): no device time",
    ]
    total = 0.0
    for setting in hw.noise_map:
        sampler = setting.sampler()
        kind = samplers.resolve(sampler)
        one = plan(config.model_copy(update={"hardware": hw.model_copy(update={"sampler": sampler})}))
        rng = np.random.default_rng(0)
        width = cirq_model(config.model).n_features
        batch = [_one_circuit(config, rng.uniform(0, np.pi, width), kind).circuits[0] for _ in range(4)]
        emulator = DensityMatrixEmulator(kind.noise_model())
        emulator.probabilities(batch[:1])
        started = time.perf_counter()
        emulator.probabilities(batch[1:])
        estimate = (time.perf_counter() - started) / 3 * n_models * one.n_records
        total += estimate
        out.append(
            f"{setting.label}: {n_models * one.n_records:,} circuits ({one.two_qubit_gates} two-qubit gates, depth "
            f"{one.depth} on {one.processor}); emulator about {estimate / 60:.0f} min"
        )
    out.append(f"estimated emulator time: about {total / 60:.0f} min on this machine, plus the audits")
    out.append("nothing was trained or measured (dry run)")
    return out
