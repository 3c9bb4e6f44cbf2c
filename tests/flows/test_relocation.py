"""Roots are relocatable: a copy of an artifact root is a root of its own.

Auditing a run of the copy reads and writes the copy only (summary.json names files relative
to its root), with the real `tiny` pipeline and `qmu audit` under a Prefect test server.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from qmu_cli.root import main
from qmu_core import storage
from qmu_core.export import resolve_model_ref
from tests.support import TinyRun

pytestmark = pytest.mark.usefixtures("prefect_api")


def _hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file below `root`, by its path relative to `root`."""
    return {str(p.relative_to(root)): storage.sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_auditing_a_copied_root_reads_and_writes_the_copy_only(
    tiny_run: TinyRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original, copy = tiny_run.root, tmp_path / "copy"  # the session's fresh `tiny` run: read only
    name = tiny_run.summary_path.parent.name
    shutil.copytree(original, copy)
    before = _hashes(original)
    runs_before = {p.name for p in (copy / "runs").iterdir()}

    # the copy's run resolves to the copy's models (before: the original's, by absolute path)
    assert resolve_model_ref(copy / "runs" / name).root == copy
    assert main(["audit", str(copy / "runs" / name)]) == 0
    printed = Path(capsys.readouterr().out.strip().splitlines()[-1])

    assert _hashes(original) == before  # byte-identical: not a file added, changed or removed
    assert printed.parent.parent == copy / "runs"  # the audit's run folder is in the copy
    assert {p.name for p in (copy / "runs").iterdir()} - runs_before == {printed.parent.name}
    audit = json.loads(printed.read_text())
    assert audit["config"]["run"]["artifact_root"] == str(copy)
    listed = [p for v in audit["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    assert listed and all(not Path(p).is_absolute() and (copy / p).is_file() for p in listed)
    assert (copy / audit["report_md"]).is_file() and str(tmp_path) not in json.dumps(audit["artifacts"])
    assert str(original) not in json.dumps(audit["artifacts"])
    digest = hashlib.sha256((copy / audit["artifacts"]["before"]).read_bytes()).hexdigest()
    assert digest == before[audit["artifacts"]["before"]]  # the same model, read from the copy
