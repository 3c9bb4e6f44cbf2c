"""The whole pipeline at paper scale on real MNIST (slow; `make test-slow`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows.pipeline import qmu_pipeline
from qmu_core.config import preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def prefect_backend() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_paper_preset_end_to_end(mnist_dir: Path, tmp_path: Path) -> None:
    cfg = preset("paper", data={"mnist_path": str(mnist_dir)}, run={"artifact_root": str(tmp_path)})
    summary = json.loads(Path(qmu_pipeline(cfg)).read_text())
    before, after, oracle = (summary["models"][k] for k in ("before", "after_ga", "oracle"))
    assert before["retain_test_acc"] > 0.3
    assert oracle["forget_test_acc"] <= 0.05
    assert after["forget_train_acc"] <= before["forget_train_acc"]
