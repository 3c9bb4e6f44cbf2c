"""The report's title names the deletion request: the class, or the sample ids of a sample request."""

from __future__ import annotations

from qmu_core.config import DataConfig, QMUConfig
from qmu_core.report import title


def test_class_request_title_names_the_class() -> None:
    assert title(QMUConfig(data=DataConfig(forget_class=4))).endswith(": forget class 4")


def test_sample_request_title_names_the_records() -> None:
    cfg = QMUConfig(data=DataConfig(forget="samples", forget_ids=(190, 53, 286)))
    assert title(cfg).endswith(": forget 3 records (53, 190, 286)")
    assert "class" not in title(cfg)


def test_long_sample_request_title_stays_short() -> None:
    cfg = QMUConfig(data=DataConfig(forget="samples", forget_ids=tuple(range(40, 0, -1))))
    assert title(cfg).endswith(": forget 40 records (1, 2, 3, 4, 5, ...)")
