"""The real pipeline on the `tiny` preset under a Prefect test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.pipeline import qmu_pipeline
from qmu_cli.root import main
from qmu_core.config import QMUConfig, preset
from qmu_core.config.overrides import apply_overrides
from tests.support import TinyRun, task_states

HEADLINE = ("retain_test_acc", "forget_test_acc", "mia_auc", "mia_forget_success")


pytestmark = pytest.mark.usefixtures("prefect_api")


def _run(cfg: QMUConfig) -> tuple[dict, dict[str, str]]:
    state = qmu_pipeline(cfg, return_state=True)
    assert state.is_completed(), state.message
    summary = json.loads(Path(state.result()).read_text())
    # 1 split, 2 + n train, membership, m unlearn, n + m + 2 outputs, audit, evaluate, m + 1 relearn,
    # compare, report (m methods)
    m = len(cfg.unlearn.methods)
    expected = 11 + 3 * m + 2 * cfg.attack.n_shadow
    n = min(cfg.attack.ulira_models, cfg.attack.n_shadow)
    if n:  # U-LiRA: unlearn + outputs per (method, reference), retrain + outputs (class), the stage
        expected += 2 * m * n + (2 * n if cfg.data.forget == "class" else 0) + 1
    return summary, task_states(state.state_details.flow_run_id, expected)


@pytest.fixture(scope="module")
def root(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's copy of the session's `tiny` run: the tests below run again into it."""
    return tiny_run.copy_to(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def first(tiny_run: TinyRun) -> tuple[dict, dict[str, str]]:
    """The first run: the session's fresh `tiny` run (its summary and its task runs' states)."""
    return tiny_run.summary, tiny_run.states


def test_first_run_trains_real_models_and_writes_the_summary(
    first: tuple[dict, dict[str, str]], tiny_run: TinyRun
) -> None:
    summary, states = first
    root = tiny_run.root
    assert set(summary["models"]) >= {"before", "after_ga", "oracle"}
    for phase in ("before", "after_ga", "oracle"):
        for key in HEADLINE:
            value = summary["models"][phase][key]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (phase, key, value)
    before, after, oracle = (summary["models"][p] for p in ("before", "after_ga", "oracle"))
    assert before["retain_test_acc"] > 0.5  # a trained model, not chance (4 classes)
    assert before["forget_test_acc"] > 0.0 and oracle["forget_test_acc"] <= 0.1
    assert summary["unlearning"]["reached_stop"] is True  # GA
    methods = {f"after_{m}" for m in ("ga", "ssd", "rga", "salun", "finetune")}
    assert set(summary["models"]) == {"before", "oracle", *methods}
    for phase in (*methods, "oracle"):
        entry = summary["models"][phase]
        assert entry["wall_s"] > 0 and entry["circuit_evals"] > 0, (phase, entry)
        gaps = entry["gap_to_oracle"]
        assert gaps["retain_test_acc"] == pytest.approx(entry["retain_test_acc"] - oracle["retain_test_acc"])
    assert all(g in (0.0, None) for g in summary["models"]["oracle"]["gap_to_oracle"].values())
    deletion = summary["deletion"]
    assert deletion["request"]["kind"] == "class" and deletion["request"]["count"] > 0
    assert set(deletion["methods"]) == {"noop", "ga", "ssd", "rga", "salun", "finetune", "retrain"}
    assert deletion["methods"]["ga"]["forget_train_acc"]["within_tolerance"] is True
    text = (root / summary["deletion_md"]).read_text()  # paths relative to the artifact root
    assert deletion["request"]["sha256"] in text and "| GA |" in text and (root / summary["deletion_png"]).is_file()
    assert after["forget_train_acc"] <= 0.05 < before["forget_train_acc"]
    assert after["retain_test_acc"] >= before["retain_test_acc"] - 0.1
    assert all(s == "Completed" for s in states.values()), states
    # every file of the run lives under the artifact root
    listed = [p for v in summary["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    # splits, membership, mia_scores, metrics, comparison, 7 models; 2 x 2 reference; 7 outputs; 6 relearn;
    # roc and feature_map: every artifact of the run, once
    assert len(listed) == len(set(listed)) == 12 + 2 * 2 + 7 + 6 + 2
    for path in [*listed, summary["metrics_parquet"], summary["plot_png"], summary["roc_png"], summary["report_md"]]:
        assert not Path(path).is_absolute() and (root / path).is_file()


def test_second_identical_run_is_fully_cached(first: tuple[dict, dict[str, str]], root: Path) -> None:
    files = sorted(root.rglob("*.parquet"))
    summary, states = _run(preset("tiny", run={"artifact_root": str(root)}))
    stages = {k: v for k, v in states.items() if k != "publish report"}
    assert len(stages) == 10 + 3 * 5 + 2 * 2 and set(stages.values()) == {"Cached"}, states
    assert summary["models"] == first[0]["models"]
    assert sorted(root.rglob("*.parquet")) == files


def test_changing_unlearning_recomputes_only_what_follows(first: tuple[dict, dict[str, str]], root: Path) -> None:
    cfg = apply_overrides(preset("tiny", run={"artifact_root": str(root)}), ["unlearn.learning_rate=0.8"])
    summary, states = _run(cfg)
    fresh = sorted(k for k, v in states.items() if v != "Cached")
    # the step size of GA, RGA and SalUn: those three unlearn, their outputs and relearn; not SSD,
    # fine-tune, the target, the oracle or the reference models (task runs are named by what they do)
    three = [n for m in ("ga", "rga", "salun") for n in (f"unlearn {m}", f"outputs after_{m}", f"relearn after_{m}")]
    after = ["fit and score attacks", "attack metrics", "compare with oracle", "publish report"]
    assert fresh == sorted([*after, *three]), states
    assert summary["models"]["before"] == first[0]["models"]["before"]
    assert summary["models"]["oracle"] == first[0]["models"]["oracle"]


def test_a_deleted_artifact_is_rebuilt_not_dangling(first: tuple[dict, dict[str, str]], root: Path) -> None:
    matrix = next((root / "membership").glob("*.parquet"))
    matrix.unlink()
    summary, states = _run(preset("tiny", run={"artifact_root": str(root)}))
    assert matrix.is_file()
    assert states["membership matrix"] == "Completed"
    assert summary["models"] == first[0]["models"]


def test_cli_prints_the_summary_path_last(
    first: tuple[dict, dict[str, str]], root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--preset", "tiny", "--set", f"run.artifact_root={root}"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    summary = json.loads(Path(out[-1]).read_text())
    assert summary["models"] == first[0]["models"]


def test_audit_of_a_run_reuses_its_models_under_another_threat_model(
    first: tuple[dict, dict[str, str]], root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = sorted((root / "model").glob("*.parquet"))
    run_dir = (root / first[0]["report_md"]).parent
    assert main(["audit", str(run_dir), "--set", "attack.threat_model=labels"]) == 0
    summary = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
    assert summary["audit"]["threat_model"] == "labels" and "loss" in summary["audit"]["not_applicable"]
    assert set(summary["models"]) == set(first[0]["models"])
    assert set(summary["models"]["before"]["attacks"]) == {"gap", "paper", "lira_offline", "lira_online", "rmia"}
    assert sorted((root / "model").glob("*.parquet")) == models  # no model trained again


def test_audit_of_one_model_artifact_recovers_its_config(
    first: tuple[dict, dict[str, str]], root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(root / first[0]["artifacts"]["after_ga"]), "--preset", "tiny"]) == 0
    summary = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
    assert list(summary["models"]) == ["after_ga"]
    assert summary["config"]["data"] == first[0]["config"]["data"]
    # the same frozen attacks as in the run, on the same records: the same numbers
    assert summary["models"]["after_ga"]["attacks"] == first[0]["models"]["after_ga"]["attacks"]


def test_a_sample_request_reuses_the_target_and_reports_each_record(
    first: tuple[dict, dict[str, str]], root: Path
) -> None:
    import pandas as pd

    frame = pd.read_parquet(root / first[0]["artifacts"]["splits"])
    ids = sorted(int(i) for i in frame.loc[frame["role"] == "target_train", "sample_id"].iloc[::12])
    # two methods: enough for a report per record (and the U-LiRA test below reuses both)
    data = {"forget": "samples", "forget_ids": ids}
    cfg = preset("tiny", run={"artifact_root": str(root)}, data=data, unlearn={"methods": ["ga", "ssd"]})
    summary, states = _run(cfg)
    trained = {k: v for k, v in states.items() if k.startswith("train ")}
    assert sorted(trained.values()).count("Completed") == 1, trained  # only the oracle: target and references reused
    assert summary["artifacts"]["before"] == first[0]["artifacts"]["before"]  # the very same target model
    request = summary["deletion"]["request"]
    assert request["kind"] == "samples" and request["sample_ids"] == ids and request["count"] == len(ids)
    assert summary["models"]["before"]["forget_test_acc"] is None  # no forget class: no forget-class test records
    text = (root / summary["deletion_md"]).read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()]
    assert [int(r.split("|")[1]) for r in rows] == ids  # one row per deleted record, with its scores
    oracle = pd.read_parquet(root / summary["artifacts"]["splits"])
    assert set(oracle.loc[oracle["is_forget"] & (oracle["role"] == "target_train"), "sample_id"]) == set(ids)


@pytest.mark.parametrize("request_kind", ["class", "samples"])
def test_ulira_reuses_the_reference_models_and_judges_every_method(
    first: tuple[dict, dict[str, str]], root: Path, request_kind: str
) -> None:
    """U-LiRA on the cached run: only the reference models' unlearning and retraining are new."""
    import pandas as pd

    data: dict[str, object] = {}
    if request_kind == "samples":  # the request of the test above: its target models are cached in `root`
        frame = pd.read_parquet(root / first[0]["artifacts"]["splits"])
        ids = sorted(int(i) for i in frame.loc[frame["role"] == "target_train", "sample_id"].iloc[::12])
        data = {"forget": "samples", "forget_ids": ids}
    # two methods (their target stages are cached): U-LiRA unlearns every reference model with each
    cfg = preset(
        "tiny",
        run={"artifact_root": str(root)},
        data=data,
        attack={"ulira_models": 2},
        unlearn={"methods": ["ga", "ssd"]},
    )
    summary, states = _run(cfg)
    trained = sorted(k for k, v in states.items() if k.startswith(("train ", "retrain ")) and v == "Completed")
    retrains = ["retrain ref-00", "retrain ref-01"] if request_kind == "class" else []
    assert set(retrains) <= set(trained), trained
    assert not [k for k in trained if k.startswith("train ref-") or k == "train target"], trained  # reused
    unlearned = [k for k, v in states.items() if " on ref-0" in k and v == "Completed"]
    assert len(unlearned) == 2 * len(cfg.unlearn.methods)
    methods = summary["deletion"]["methods"]
    for row in ("noop", *cfg.unlearn.methods, "retrain"):
        entry = methods[row]["ulira_auc"]
        assert 0.0 <= entry["mean"] <= 1.0 and entry["ci"][0] <= entry["mean"] <= entry["ci"][1], (row, entry)
    assert methods["retrain"]["ulira_auc"]["gap"] == 0.0
    assert "U-LiRA AUC" in (root / summary["deletion_md"]).read_text()


def test_cli_rejects_bad_input_with_a_remedy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--preset", "tiny", "--set", "train.epoch=2"]) == 2
    err = capsys.readouterr().err
    assert "train.epoch" in err and "Known here: epochs" in err


def test_tiny_on_a_two_worker_dask_cluster_matches_the_default_runner(
    first: tuple[dict, dict[str, str]], root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run.task_runner=dask`: every stage runs in a local Dask cluster's two worker processes.

    The Dask workers inherit the environment, not Prefect's settings context, so the API URL
    goes there too. One unlearning method (every kind of stage, less to train): its models' metrics
    are the default runner's `tiny` run's, row for row, for the same seed.
    """
    import numpy as np
    from prefect.settings import PREFECT_API_URL

    from qmu_core.artifacts import read_path

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    runner = {"artifact_root": str(tmp_path), "task_runner": "dask", "workers": 2}
    cfg = preset("tiny", run=runner, unlearn={"methods": ["ga"]})
    summary, states = _run(cfg)
    assert all(s == "Completed" for s in states.values()), states
    assert set(summary["models"]) == {"before", "oracle", "after_ga"} <= set(first[0]["models"])
    # float32 models: the two runners may split TensorFlow's threads differently
    tol = float(np.finfo(np.float32).eps) * 1e3
    for phase, entry in summary["models"].items():
        for key in HEADLINE:
            assert entry[key] == pytest.approx(first[0]["models"][phase][key], abs=tol), (phase, key)
    rows = ["model_id", "phase", "attack", "metric"]
    dask_metrics = read_path(tmp_path / summary["metrics_parquet"]).set_index(rows)["value"]
    local_metrics = read_path(root / first[0]["metrics_parquet"]).set_index(rows)["value"]
    assert dask_metrics.index.isin(local_metrics.index).all()
    assert {p for _, p, _, _ in dask_metrics.index} == {"before", "oracle", "after_ga"}
    np.testing.assert_allclose(dask_metrics, local_metrics.loc[dask_metrics.index], rtol=0, atol=tol)


def test_a_cross_field_rule_fails_the_run_before_any_stage_with_the_rule_message_alone() -> None:
    """What a form run gets when two fields disagree (the server's JSON schema checks one field at a time).

    The run fails before any stage; its state message and its first ERROR line are the
    rule's own message, with no Prefect traceback anywhere in its log.
    """
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    state = qmu_pipeline(config={"preset": "tiny", "data": {"forget_class": 9}}, return_state=True)  # type: ignore[arg-type]
    assert state.is_failed()
    rule = (
        "data.forget_class=9 is not in data.classes=[0, 1, 4, 7]; pick one of those labels or add it to `data.classes`."
    )
    assert state.message == rule
    flow_run_id = state.state_details.flow_run_id
    assert task_states(flow_run_id, 0) == {}
    APILogWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    errors = [log.message for log in sorted(logs, key=lambda log: log.timestamp) if log.level >= 40]
    assert errors and errors[0] == rule, errors
    assert not [m for m in (log.message for log in logs) if "Traceback" in m or "exited with unexpected" in m]
