"""`qmu hardware --dry-run` (issue 31, item 5): the plan of a hardware run, and the cap on its shots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cirq
import numpy as np
import pandas as pd
import pytest

from qmu_core import splits as splits_module
from qmu_core.config import QMUConfig, preset
from qmu_core.errors import ConfigError
from qmu_core.hardware import dryrun, evaluate
from qmu_core.hardware.devices import processor
from qmu_core.qnn import circuits

ENGINE = {"kind": "google_engine", "processor_id": "willow_pink"}


def _config(**hardware: Any) -> QMUConfig:
    return preset("tiny", hardware={"records_per_group": 5, **hardware})


def test_the_plan_counts_what_the_flow_measures() -> None:
    cfg = _config(sampler={"kind": "google_virtual"}, repetitions=300)
    plan = dryrun.plan(cfg)
    frame = splits_module.split_roles(cfg.data, cfg.model.feature_spec, seed=cfg.run.seed).frame
    chosen = evaluate.choose_records(frame, 5, cfg.run.seed)
    assert plan.n_records == len(chosen) == 30  # 5 per (role, forget) group
    assert plan.models == ["before", "after_ga", "after_ssd", "after_rga", "after_salun", "after_finetune", "oracle"]
    assert plan.references == ["ref-00", "ref-01"]
    assert plan.circuits == 9 * 30 and plan.shots == 9 * 30 * 300 and plan.jobs == 9  # one batch per model
    # hardware.seeds: the other training seeds' models are measured too, and counted
    seeded = dryrun.plan(preset("tiny", unlearn={"seeds": 2}, hardware={"records_per_group": 5, "seeds": 2}))
    assert seeded.models == plan.models + [f"r1/{m}" for m in plan.models] and seeded.circuits == 16 * 30
    # The compiled structure does not depend on the weights: another model's circuits have the same counts.
    n = len(circuits.weight_symbols(4, 2))
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n]], "values": [np.linspace(-3, 3, n)]})
    table = evaluate.prepare_records(weights, chosen, cfg.model, processor("willow_pink"))
    assert set(table["two_qubit_after"]) == {plan.two_qubit_gates} == {8}  # 4 CZs per layer, 2 layers
    assert plan.device_s == pytest.approx(plan.shots * (plan.circuit_s + dryrun.REPETITION_OVERHEAD_S))
    study = dryrun.plan(_config(shots=[10, 100]), study=True)
    assert study.repetitions == (10, 100) and study.shots == 9 * 30 * 110 and study.jobs == 18


def test_the_device_time_is_each_moment_at_its_slowest_gate() -> None:
    q = cirq.GridQubit(4, 4), cirq.GridQubit(4, 5)
    durations = processor("willow_pink").device.metadata.gate_durations
    circuit = cirq.Circuit(
        cirq.Moment(cirq.PhasedXZGate(x_exponent=0.5, z_exponent=0, axis_phase_exponent=0).on(q[0])),
        cirq.Moment(cirq.CZ(*q)),
        cirq.Moment(cirq.measure(*q, key="z")),
    )
    assert dryrun._duration_s(circuit, durations) == pytest.approx((25 + 42 + 600) * 1e-9)
    assert dryrun._duration_s(circuit, None) is None
    assert dryrun.plan(_config(sampler={"kind": "qsim"})).device_s is None


def test_an_engine_plan_says_what_would_be_sent_and_never_the_project() -> None:
    cfg = _config(sampler={**ENGINE, "run_name": "r1", "device_config_name": "cfg"})
    plan = dryrun.plan(cfg, environ={"GOOGLE_CLOUD_PROJECT": "secret-project-31"})
    text = "\n".join(plan.lines())
    assert "secret-project-31" not in text and "GOOGLE_CLOUD_PROJECT (set)" in text
    assert "processor_id: willow_pink" in text and "run_name: r1" in text and "device_config_name: cfg" in text
    assert "9 run_batch calls of up to 100 circuits" in text and "nothing was trained, sampled or sent" in text
    unset = "\n".join(dryrun.plan(cfg, environ={}).lines())
    assert "NOT SET" in unset


def test_the_shot_cap_refuses_a_run_over_it_and_zero_means_none() -> None:
    dryrun.check_shot_cap(_config(), 9, 30, (1000,))  # no cap by default
    dryrun.check_shot_cap(_config(max_total_shots=270_000), 9, 30, (1000,))  # exactly at the cap
    with pytest.raises(ConfigError, match=r"would measure 270,270 shots \(9 models x 30 records x 1000 \+ 1 shots\)"):
        dryrun.check_shot_cap(_config(max_total_shots=270_000), 9, 30, (1000, 1))
    with pytest.raises(ConfigError, match="over hardware.max_total_shots=100; nothing was sent"):
        dryrun.check_shot_cap(_config(max_total_shots=100), 1, 1, (101,))


def test_the_cli_dry_run_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qmu_cli.root import main

    root = tmp_path / "root"
    args = [
        "hardware",
        "--preset",
        "tiny",
        "--set",
        f"run.artifact_root={root}",
        "--set",
        "hardware.records_per_group=2",
    ]
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "total shots: 108,000" in out and "willow_pink" in out  # 9 models x 12 records x 1,000 shots
    assert not (root / "model").exists() and not (root / "runs").exists()


def test_the_leak_map_dry_run_lists_every_setting_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qmu_cli.root import main

    root = tmp_path / "root"
    noise = 'hardware.noise_map=[{"scale": 0}, {"processor": "weber"}]'
    args = ["leak-map", "--preset", "tiny", "--set", f"run.artifact_root={root}", "--set", noise, "--dry-run"]
    assert main([*args, "--set", "hardware.records_per_group=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("records per model: 12; shot counts: 10, 100, 1,000, 10,000 and infinite")
    assert lines[2].startswith("noiseless: 108 circuits (") and "on willow_pink); emulator about" in lines[2]
    assert lines[3].startswith("weber x1: 108 circuits (") and "on weber)" in lines[3]  # 9 models x 12 records
    assert lines[-1] == "nothing was trained or measured (dry run)"
    assert not root.exists() or not any(root.iterdir())
