"""`qmu-hardware`, `qmu-shots` and `qmu-leak-map` on the `tiny` preset under a Prefect test server.

The noiseless emulator's infinite-shot outputs must reproduce exact simulation (TFQ) through
the whole chain (prepared circuits, exact distributions, the classical head, the frozen attacks);
the noisy run must report every model for every source, and the study must show shot noise
shrinking with the shots. The leakage map's noiseless row must equal exact simulation too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.hardware import qmu_hardware, qmu_leak_map, qmu_shots
from qmu_cli.root import main
from qmu_core.config import preset
from tests.support import TinyRun

PHASES = {"before", "oracle", *(f"after_{m}" for m in ("ga", "ssd", "rga", "salun", "finetune"))}
AWARE = ("plain", "shot-aware")


pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def root(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's `tiny` run's root.

    The hardware flows reuse its trained models (the same stages and keys as the pipeline's) and
    write their own artifacts into the copy.
    """
    return tiny_run.copy_to(tmp_path_factory.mktemp("artifacts"))


def _rows(path: str) -> dict[tuple[str, str], dict]:
    payload = json.loads(Path(path).read_text())
    return {(r["source"], r["phase"]): r for r in payload["rows"]}


def test_noiseless_emulator_reproduces_exact_simulation(root: Path) -> None:
    cfg = preset(
        "tiny",
        run={"artifact_root": str(root)},
        hardware={"sampler": {"kind": "emulator", "noise": "none"}, "records_per_group": 6, "repetitions": 200},
    )
    rows = _rows(qmu_hardware(cfg))
    assert {p for s, p in rows if s == "measured"} == PHASES
    for phase in PHASES:
        sim, exact, measured = (rows[(s, phase)] for s in ("simulation", "exact", "measured"))
        for key in ("retain_test_acc", "forget_train_acc", "mia_auc", "mia_forget_success"):
            assert exact[key] == pytest.approx(sim[key], abs=1e-9), (phase, key)  # same records, same model
            assert measured[key] is None or 0.0 <= measured[key] <= 1.0
    assert (root / "runs").is_dir() and list(root.glob("runs/*/hardware.png"))


def test_noisy_study_shrinks_shot_noise_and_cli_runs_hardware(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hardware = {
        "sampler": {"kind": "emulator", "processor": "willow_pink"},
        "records_per_group": 6,
        "shots": [10, 1000],
    }
    rows = _rows(qmu_shots(preset("tiny", run={"artifact_root": str(root)}, hardware=hardware)))
    assert {s for s, _ in rows} == {"simulation", "exact", "shots=10", "shots=1000"}
    for phase in PHASES:
        assert rows[("shots=10", phase)]["output_variance"] > rows[("shots=1000", phase)]["output_variance"] > 0
        assert rows[("exact", phase)]["output_variance"] == 0.0
    assert list(root.glob("runs/*/shots.png"))
    code = main(
        [
            "hardware",
            "--preset",
            "tiny",
            "--set",
            f"run.artifact_root={root}",
            "--set",
            'hardware={"sampler": {"kind": "qsim"}, "records_per_group": 6, "repetitions": 100, "seeds": 2}',
            "--set",
            "unlearn.seeds=2",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.endswith("hardware.json") and {("measured", "before"), ("measured", "r1/before")} <= set(_rows(out))
    # the device's deletion table: one row per model, over both training seeds
    deletion = json.loads(Path(out).read_text())["deletion"]
    assert {(r["source"], r["phase"], r["seeds"]) for r in deletion} == {
        (s, p, 2) for s in ("simulation", "exact", "measured") for p in PHASES
    }
    assert "mean over 2 training seeds" in Path(out).with_suffix(".md").read_text()


def test_leak_map_rows_and_its_noiseless_row_is_simulation(root: Path) -> None:
    # willow_pink x1 with 6 records per group: the circuits and distributions of the shot study above
    hardware = {"records_per_group": 6, "shots": [10], "noise_map": [{"scale": 0}, {"scale": 1}]}
    path = qmu_leak_map(preset("tiny", run={"artifact_root": str(root)}, hardware=hardware))
    payload = json.loads(Path(path).read_text())
    rows = {(r["setting"], r["shots"], r["attack"], r["phase"]): r for r in payload["rows"]}
    measured = {"noiseless", "willow_pink x1"}
    assert {(s, n, a) for s, n, a, _ in rows} == {("simulation", None, "plain")} | {
        (s, n, a) for s in measured for n, a in ((None, "plain"), (10, "plain"), (10, "shot-aware"))
    }
    for phase in PHASES:
        sim, noiseless = rows[("simulation", None, "plain", phase)], rows[("noiseless", None, "plain", phase)]
        for key in ("mia_auc", "mia_auc_ci_low", "mia_forget_auc", "retain_test_acc"):
            assert noiseless[key] == pytest.approx(sim[key], abs=1e-9), (phase, key)
        for s in measured:
            assert all(0.0 <= rows[(s, 10, a, phase)]["mia_auc"] <= 1.0 for a in AWARE)
            # both attacks score the same measured outputs: the same accuracy
            assert (
                rows[(s, 10, "plain", phase)]["retain_test_acc"]
                == rows[(s, 10, "shot-aware", phase)]["retain_test_acc"]
            )
    assert set(payload["where"]["before"]) == {"leaks", "forget_leaks", "shot_aware", "recovered"}
    assert len(payload["where"]["before"]["leaks"]) == 2
    folder = Path(path).parent
    assert (folder / "leakmap.png").stat().st_size > 0
    assert "| noiseless | inf | plain | before |" in (folder / "leakmap.md").read_text()


def test_hqnn_fails_before_training(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["hardware", "--preset", "default", "--set", f"run.artifact_root={root / 'hqnn'}"])
    assert code == 2
    assert "basic QNN" in capsys.readouterr().err
    assert not (root / "hqnn" / "model").exists()


def test_a_run_over_the_shot_cap_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hardware.max_total_shots` is checked before any model trains or any circuit is measured (issue 31)."""
    root = tmp_path / "capped"
    cap = ["--set", "hardware.max_total_shots=1000", "--set", "hardware.records_per_group=2"]
    code = main(["hardware", "--preset", "tiny", "--set", f"run.artifact_root={root}", *cap])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "would measure 108,000 shots" in err and "over hardware.max_total_shots=1,000; nothing was sent" in err
    assert (root / "hw_records").is_dir()  # the records are picked first: the cap counts them
    assert not [d.name for d in root.iterdir() if d.name in ("model", "circuits", "distribution", "shots")]
