"""Your own data through the real `tiny` pipeline (issue 32 item 1): a Fashion-MNIST-format IDX set and a CSV.

Both train, audit, unlearn and report as the built-in datasets do; a malformed file stops the run
at its first stage, before anything trains, with the file's problem and its fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flows.pipeline import qmu_pipeline
from qmu_cli.root import main
from qmu_core.config import preset
from tests.qmu_core.test_datafiles import fashion_idx, feature_csv

pytestmark = pytest.mark.usefixtures("prefect_api")


def _run(root: Path, data: dict) -> dict:
    cfg = preset(
        "tiny",
        run={"artifact_root": str(root)},
        data={"dataset": "file", **data},
        unlearn={"methods": ["ga"]},
        attack={"n_shadow": 1},
    )
    state = qmu_pipeline(cfg, return_state=True)
    assert state.is_completed(), state.message
    return json.loads(Path(state.result()).read_text())


def _split_facts(root: Path) -> dict:
    (path,) = (root / "splits").glob("splits-*.parquet")
    return json.loads(pq.read_schema(path).metadata[b"qmu.extra"])


def test_a_fashion_mnist_format_idx_set_runs_end_to_end(tmp_path: Path) -> None:
    folder = fashion_idx(tmp_path / "fashion")  # 4 classes, 8x8, under a prefix MNIST does not use
    summary = _run(tmp_path / "a", {"path": str(folder), "classes": [0, 1, 2, 3], "forget_class": 2})
    before, oracle = summary["models"]["before"], summary["models"]["oracle"]
    assert before["retain_test_acc"] > 0.5  # learnable patterns: far above chance (0.25)
    assert before["forget_train_acc"] > oracle["forget_train_acc"]  # the oracle never saw class 2
    assert set(summary["models"]) == {"before", "after_ga", "oracle"}
    assert "fashion-train-images-idx3-ubyte.gz (400)" in _split_facts(tmp_path / "a")["source"]


def test_a_csv_with_text_labels_runs_end_to_end(tmp_path: Path) -> None:
    csv = feature_csv(tmp_path / "animals.csv")  # 10 feature columns, labels cat / dog / emu
    data = {"path": str(csv), "label_column": "species", "classes": [0, 1, 2], "forget_class": 1}
    summary = _run(tmp_path / "b", data)
    assert summary["models"]["before"]["retain_test_acc"] > 0.5
    facts = _split_facts(tmp_path / "b")
    assert facts["label_names"] == {"0": "cat", "1": "dog", "2": "emu"}
    assert "10 features, min-max scaled, as 4x4 images" in facts["source"]


def test_a_malformed_file_stops_the_run_before_anything_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("label,a,b\n0,1,2\n1,,4\n" + "0,1,1\n1,2,2\n" * 200)
    root = tmp_path / "root"
    sets = [f"run.artifact_root={root}", "data.dataset=file", f"data.path={bad}", "data.classes=[0, 1]"]
    code = main(["run", "--preset", "tiny", *(a for s in [*sets, "data.forget_class=1"] for a in ("--set", s))])
    err = capsys.readouterr().err
    assert code != 0
    assert f"data.path='{bad}': 1 of 402 records have NaN, empty or infinite values (lines 3). Repair" in err
    assert not (root / "model").exists()
