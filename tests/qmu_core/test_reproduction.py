"""`qmu reproduce`'s plan and verdicts: the study's runs, each claim's verdict, REPRODUCTION.md from its data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmu_core import reproduction
from qmu_core.config import ReproduceConfig
from qmu_core.errors import ConfigError
from qmu_core.report import reproduction as document
from qmu_core.reproduction import PAPER, TOLERANCE


def test_the_study_is_each_model_under_both_protocols_then_the_device_and_the_shots() -> None:
    rc = ReproduceConfig(seeds=3, mnist_path="/data/mnist", artifact_root="/tmp/root", overrides=("train.epochs=2",))
    planned = reproduction.studies(rc)
    assert [s.key for s in planned] == [
        "paper/shadow",
        "paper/paper",
        "paper_hqnn/shadow",
        "paper_hqnn/paper",
        "device/willow_pink",
        "device/weber",
        "shots/willow_pink",
    ]
    for s in planned:
        cfg = s.config
        assert cfg.preset == s.preset and cfg.run.artifact_root == "/tmp/root"
        assert cfg.data.dataset == "mnist" and cfg.data.mnist_path == "/data/mnist"
        assert cfg.data.forget == "class" and cfg.data.forget_class == 4
        assert cfg.train.epochs == 2  # the overrides reach every run
        assert cfg.attack.protocol == s.protocol
        assert (cfg.attack.headline == "paper") == (s.protocol == "paper")
    sims = [s for s in planned if s.kind == "simulation"]
    assert all(s.config.unlearn.seeds == 3 for s in sims)
    # the two protocols of one model share every model: only the attack section differs
    shadow, paper = sims[0].config, sims[1].config
    assert shadow.model_dump(exclude={"attack"}) == paper.model_dump(exclude={"attack"})
    device = [s for s in planned if s.kind != "simulation"]
    assert [s.config.hardware.sampler.processor for s in device] == ["willow_pink", "weber", "willow_pink"]
    assert all(s.config.model.encoding == "angle" and s.config.hardware.sampler.kind == "emulator" for s in device)
    assert planned[-1].config.hardware.shots == (10, 100, 1000, 10000)


def test_no_processor_means_no_device_part_and_a_bad_override_names_the_run() -> None:
    planned = reproduction.studies(ReproduceConfig(models=("paper_hqnn",), processors=()))
    assert [s.key for s in planned] == ["paper_hqnn/shadow", "paper_hqnn/paper"]
    with pytest.raises(ConfigError, match=r"(?s)reproduce: the .paper_hqnn. run of the study: .*train.epochs"):
        reproduction.studies(ReproduceConfig(models=("paper_hqnn",), overrides=("train.epochs=many",)))


def _cell(mean: float, half: float = 0.05) -> dict[str, Any]:
    return {"mean": mean, "ci": [max(0.0, mean - half), min(1.0, mean + half)]}


def _summary(success: dict[str, float], control: dict[str, float], retained: dict[str, float]) -> dict[str, Any]:
    methods = {}
    for name in ("noop", "ga", "ssd", "rga", "salun", "finetune", "retrain"):
        methods[name] = {
            "paper:forget_success": _cell(success[name]),
            "paper:forget_control": _cell(control.get(name, 0.0)),
            "retain_test_acc": _cell(retained[name], 0.02),
            "wall_s": {"mean": 2.0, "ci": [1.5, 2.5]},
            "circuit_evals": {"mean": 100.0, "ci": [None, None]},
        }
    return {"deletion": {"methods": methods, "repeats": 3}}


SUCCESS = {"noop": 0.88, "ga": 0.0, "ssd": 0.30, "rga": 0.02, "salun": 0.0, "finetune": 0.1, "retrain": 0.0}
RETAINED = {"noop": 0.90, "ga": 0.86, "ssd": 0.70, "rga": 0.89, "salun": 0.9, "finetune": 0.9, "retrain": 0.91}


def _rows(tables: dict[str, list[reproduction.Row]], table: str, protocol: str = "paper") -> dict[str, Any]:
    return {r.method: r for r in tables[table] if r.protocol == protocol}


def test_each_claim_gets_the_fixed_rules_verdict() -> None:
    summary = _summary(SUCCESS, {}, RETAINED)
    tables = reproduction.claims({"paper_hqnn/shadow": summary, "paper_hqnn/paper": summary}, {})
    leak = _rows(tables, "leak")
    assert leak["before"].verdict == "reproduced" and leak["before"].ours == pytest.approx(0.88)  # 0.902 within CI
    assert leak["ga"].verdict == "reproduced" and leak["rga"].verdict == "reproduced"  # 0 % after, within the rule
    assert leak["ssd"].verdict == "not reproduced"  # 30 %: outside its CI and more than TOLERANCE from 0 %
    assert leak["salun"].verdict == "not comparable" and "did not run" in leak["salun"].why
    assert {r.verdict for r in _rows(tables, "leak", "shadow").values()} == {"not comparable"}
    assert "retrain" not in leak  # the oracle is a control, not a claim
    assert leak["before"].controls == {"held-out forget-class records": 0.0, "retrain oracle": 0.0}

    accuracy = _rows(tables, "accuracy", "shadow")  # one model set per model: the sound run's
    assert not _rows(tables, "accuracy", "paper")
    assert accuracy["ga"].verdict == "reproduced"  # 0.86 against 0.90: within TOLERANCE
    assert accuracy["ssd"].verdict == "not reproduced"  # 0.70 against 0.90
    assert accuracy["finetune"].verdict == "not comparable"
    assert {r.verdict for r in tables["cost"]} == {"not comparable"}
    assert tables["cost"][0].controls == {"circuit evaluations": 100.0}


def test_a_times_interval_is_cut_at_zero() -> None:
    summary = _summary(SUCCESS, {}, RETAINED)
    summary["deletion"]["methods"]["salun"]["wall_s"] = {"mean": 6.3, "ci": [-12.7, 25.3]}  # 3 seeds, wide spread
    cost = _rows(reproduction.claims({"paper/shadow": summary}, {}), "cost", "shadow")
    assert cost["salun"].ci == (0.0, 25.3) and cost["ga"].ci == (1.5, 2.5)


def test_a_leak_that_never_trained_records_match_is_called_the_class_not_membership() -> None:
    """The paper protocol's pitfall, shown by its controls: 90 % on the forget set, 90 % on records never trained on."""
    summary = _summary(SUCCESS | {"retrain": 0.93}, {"noop": 0.9}, RETAINED)
    leak = _rows(reproduction.claims({"paper/paper": summary}, {}), "leak")
    assert leak["before"].verdict == "reproduced"  # the number matches the paper's ...
    assert "most of the number follows the class, not membership" in leak["before"].why  # ... the controls say why
    assert "93.0 %" in leak["before"].why
    fair = _rows(reproduction.claims({"paper/paper": _summary(SUCCESS, {"noop": 0.43}, RETAINED)}, {}), "leak")
    assert "follows the class" not in fair["before"].why  # 43 %: under half of the forget set's 88 %


def test_a_number_far_from_the_papers_is_not_reproduced_whatever_its_interval() -> None:
    far = _summary(SUCCESS | {"noop": 0.6}, {}, RETAINED)
    leak = _rows(reproduction.claims({"paper/paper": far}, {}), "leak")
    assert leak["before"].verdict == "not reproduced" and "60.0 % against the paper's 90.2 %" in leak["before"].why
    assert abs(0.6 - PAPER["before_simulation"]) > TOLERANCE


HARDWARE = {
    "config": {"model": {"encoding": "angle"}, "hardware": {"repetitions": 1000}},
    "rows": [
        {"source": "simulation", "phase": "before", "mia_forget_success": 0.8},
        {"source": "measured", "phase": "before", "mia_forget_success": 0.7},
        {"source": "measured", "phase": "after_ga", "mia_forget_success": 0.05},
        {"source": "measured", "phase": "oracle", "mia_forget_success": 0.1},
    ],
}


def test_device_rows_are_measured_numbers_beside_simulation_and_not_comparable() -> None:
    rows = reproduction.claims({}, {"device/weber": HARDWARE})["device"]
    assert [(r.method, r.ours, r.verdict) for r in rows] == [
        ("before", 0.7, "not comparable"),
        ("ga", 0.05, "not comparable"),
    ]
    assert rows[0].controls == {"same records in simulation": 0.8, "retrain oracle, measured": 0.1}
    assert "angle-encoded" in rows[0].why and "weber" in rows[0].why and "1000 shots" in rows[0].why


def test_reproduction_md_is_rebuilt_from_its_data_alone(tmp_path: Path) -> None:
    summary = _summary(SUCCESS | {"retrain": 0.93}, {"noop": 0.9}, RETAINED)
    tables = reproduction.claims({"paper/shadow": summary, "paper/paper": summary}, {"device/weber": HARDWARE})
    runs = {"paper/shadow": {"kind": "simulation", "wall_s": 12.0, "path": "runs/x/summary.json"}}
    machine = {"commit": "0123456789abcdef", "dirty": False, "cpu": "test CPU", "cores": 2, "date": "2026-12-06"}
    written = document.write(
        tables,
        out_dir=tmp_path / "a",
        shots=[],
        runs=runs,
        machine=machine,
        seeds=3,
        tolerance=TOLERANCE,
        wall_s=60.0,
        command="qmu reproduce --seeds 3",
    )
    assert set(written) == set(document.FILES)
    text = written["REPRODUCTION.md"].read_text()
    counts = json.loads(written["reproduction.json"].read_text())["counts"]
    assert f"**Verdicts:** {counts['reproduced']} reproduced, {counts['not reproduced']} not reproduced" in text
    assert "| paper | simulation | paper | before | 88.0 | [83.0, 93.0] | 90.2 % |" in text
    assert "qmu reproduce --seeds 3" in text and "`0123456789ab`" in text and "test CPU" in text
    copy = tmp_path / "b"
    copy.mkdir()
    (copy / "reproduction.json").write_text(written["reproduction.json"].read_text())
    assert document.from_data(copy / "reproduction.json")["REPRODUCTION.md"].read_text() == text
    assert (copy / "reproduction.png").stat().st_size > 0


def test_the_rerun_command_names_what_differs_from_the_defaults() -> None:
    rc = ReproduceConfig(seeds=1, mnist_path="m", processors=(), overrides=("attack.n_shadow=16",))
    assert document.command_line(rc) == (
        "qmu reproduce --seeds 1 --mnist m --artifact-root data/artifacts --processors none --set attack.n_shadow=16"
    )


def test_u_lira_rows_sit_beside_the_population_metric_when_the_run_has_them() -> None:
    summary = _summary(SUCCESS, {}, RETAINED)
    summary["deletion"]["methods"]["noop"]["ulira_auc"] = _cell(0.97)
    summary["deletion"]["methods"]["noop"]["mia_forget_auc"] = _cell(0.7)
    summary["deletion"]["methods"]["retrain"]["ulira_auc"] = _cell(0.52, 0.3)
    rows = {r.method: r for r in reproduction.claims({"paper_hqnn/shadow": summary}, {})["ulira"]}
    assert set(rows) == {"before", "retrain"}  # only the models U-LiRA judged
    assert rows["before"].ours == pytest.approx(0.97) and rows["before"].verdict == "not comparable"
    assert rows["before"].controls == {"population forget-set AUC": pytest.approx(0.7)}
    assert rows["retrain"].ci == (pytest.approx(0.22), pytest.approx(0.82))
