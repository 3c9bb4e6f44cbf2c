"""The committed docs/reproduction: REPRODUCTION.md is what its data makes, and the data what its runs make."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qmu_core.report import reproduction as document

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "reproduction"
HOW = "made by `qmu reproduce --mnist ../shared/data/mnist --publish-to docs/reproduction` (docs/reproduction.md)"


def test_regenerating_the_committed_report_from_its_data_gives_the_same_file(tmp_path: Path) -> None:
    data = PUBLISHED / "reproduction.json"
    assert data.is_file(), f"{data} is missing; it is {HOW}"
    shutil.copy(data, tmp_path / "reproduction.json")
    again = document.from_data(tmp_path / "reproduction.json")
    assert again["REPRODUCTION.md"].read_text() == (PUBLISHED / "REPRODUCTION.md").read_text()


def test_every_committed_row_follows_from_the_committed_run_files() -> None:
    """The verdict rules applied again to the published summary.json / hardware.json of each run."""
    tables = json.loads((PUBLISHED / "reproduction.json").read_text())["tables"]
    assert document.recompute(PUBLISHED) == tables
    assert sum(len(rows) for rows in tables.values()) > 0
