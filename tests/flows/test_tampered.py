"""Trust end to end (issue 25): the CLI refuses a tampered or non-finite model.

It never derives a sealed artifact from it. One `tiny` run; every case works on its own copy
of the artifact root.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qmu_cli.root import main
from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef
from tests.support import TinyRun

SEAL = "does not match its seal; rerun `qmu run` to rebuild it, or restore the file"
HARDWARE = '{"sampler": {"kind": "emulator"}, "records_per_group": 4, "repetitions": 50}'


pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def clean(tiny_run: TinyRun) -> tuple[Path, dict]:
    """The session's clean `tiny` run (read only: every case copies it)."""
    return tiny_run.root, tiny_run.summary


def _copy(clean: tuple[Path, dict], tmp_path: Path) -> tuple[Path, ArtifactRef]:
    """A copy of the clean root and the ref of its `before` model, whose outputs are deleted.

    As in the issue: the tampered model's outputs were computed after the tampering.
    """
    root, summary = clean
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    ref = ArtifactRef(stage="model", key=Path(summary["artifacts"]["before"]).stem, root=copy)
    assert ref.path.is_file()
    for path in (copy / "outputs").glob("*.parquet"):  # not yet computed: a reader must read the model
        inputs = json.loads((pq.read_schema(path).metadata or {})[b"qmu.inputs"])
        if inputs.get("weights") == ref.key:
            path.unlink()
            path.with_name(path.stem + artifacts.SEAL_SUFFIX).unlink()
    return copy, ref


def _tamper(ref: ArtifactRef, case: str) -> None:
    """negated: weights negated, the seal left as it was; huge / nan: 3e38 or NaN, resealed consistently."""
    table = pq.read_table(ref.path)
    frame = table.to_pandas()
    old = [np.asarray(v, dtype=np.float32) for v in frame["values"]]
    fill = {"negated": None, "huge": np.float32(3e38), "nan": np.float32(math.nan)}[case]
    frame["values"] = [-v if fill is None else np.full_like(v, fill) for v in old]
    new = pa.Table.from_pandas(frame[table.schema.names], schema=table.schema, preserve_index=False)
    pq.write_table(new, ref.path)
    if case != "negated":
        record = json.loads(artifacts.seal_path(ref).read_text())
        artifacts.seal(ref, [ref], code=record["code"])


def _seals(root: Path) -> set[Path]:
    return set(root.rglob(f"*{artifacts.SEAL_SUFFIX}"))


def _check_root(root: Path, tampered: ArtifactRef, before: set[Path]) -> None:
    """Every seal under `root` verifies (but the tampered model's own, for `negated`).

    And no artifact sealed since the tampering was derived from the tampered model (only,
    after a run rebuilt it, from the rebuilt one).
    """
    failing = []
    for path in sorted(_seals(root)):
        record = json.loads(path.read_text())
        ref = ArtifactRef(stage=path.parent.name, key=record["key"], root=root)
        if artifacts.verify(ref, code=record["code"]) is not None:
            failing.append(ref.key)
        if path not in before and tampered.key in json.dumps(artifacts.read_metadata(ref).inputs):
            # derived from the model only after a run rebuilt it (verified, sealed again)
            assert artifacts.check_seal(tampered) is None, ref.key
            assert path.stat().st_mtime_ns >= artifacts.seal_path(tampered).stat().st_mtime_ns, ref.key
    assert set(failing) <= {tampered.key}, failing


def _refused(code: int, err: str, ref: ArtifactRef, case: str) -> None:
    print(f"exit {code}: {err}")  # shown by `pytest -rA`
    assert code == 2, err
    assert str(ref.path) in err, err
    assert (SEAL if case == "negated" else "not finite") in err, err
    assert "Traceback" not in err


CASES = ["negated", "huge", "nan"]


@pytest.mark.parametrize("case", CASES)
def test_export_refuses(
    clean: tuple[Path, dict], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, ref = _copy(clean, tmp_path)
    _tamper(ref, case)
    before = _seals(root)
    out = tmp_path / "export"
    code = main(["export", str(ref.path), str(out)])
    for manifest in out.glob("manifest.json"):  # whatever is written is strict JSON
        json.loads(manifest.read_text(), parse_constant=lambda c: pytest.fail(f"manifest.json holds {c}"))
    if case == "huge":  # 3e38 is a finite float32: exported as such (its outputs are refused: below)
        assert code == 0 and json.loads((out / "manifest.json").read_text())["head"]
    else:
        _refused(code, capsys.readouterr().err, ref, case)
        assert not (out / "manifest.json").exists()
    _check_root(root, ref, before)


@pytest.mark.parametrize("case", CASES)
def test_audit_refuses(clean: tuple[Path, dict], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    root, ref = _copy(clean, tmp_path)
    _tamper(ref, case)
    before = _seals(root)
    code = main(["audit", str(ref.path), "--preset", "tiny"])
    _refused(code, capsys.readouterr().err, ref, case)
    _check_root(root, ref, before)


@pytest.mark.parametrize("case", ["negated", "nan"])
def test_hardware_refuses(
    clean: tuple[Path, dict], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, ref = _copy(clean, tmp_path)
    _tamper(ref, case)
    before = _seals(root)
    code = main(["hardware", "--preset", "tiny", "--set", f"run.artifact_root={root}", "--set", f"hardware={HARDWARE}"])
    _refused(code, capsys.readouterr().err, ref, case)
    _check_root(root, ref, before)


def test_a_refused_audit_leaves_the_next_run_clean(
    clean: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's sequence: negate the weights, audit (refused), run.

    The run rebuilds the tampered model (its own rebuild path) and reports what the clean run reported.
    """
    root, ref = _copy(clean, tmp_path)
    _tamper(ref, "negated")
    before = _seals(root)
    assert main(["audit", str(ref.path), "--preset", "tiny"]) == 2
    capsys.readouterr()
    assert main(["run", "--preset", "tiny", "--set", f"run.artifact_root={root}"]) == 0
    summary = json.loads(Path(capsys.readouterr().out.strip().splitlines()[-1]).read_text())
    for phase in ("before", "after_ga"):
        assert summary["models"][phase]["retain_test_acc"] == clean[1]["models"][phase]["retain_test_acc"]
    assert artifacts.check_seal(ref) is None  # rebuilt and sealed again
    _check_root(root, ref, before)


@pytest.mark.parametrize("case", ["huge", "nan"])
def test_run_refuses_a_consistently_resealed_non_finite_model(
    clean: tuple[Path, dict], tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root, ref = _copy(clean, tmp_path)
    _tamper(ref, case)
    before = _seals(root)
    code = main(["run", "--preset", "tiny", "--set", f"run.artifact_root={root}"])
    _refused(code, capsys.readouterr().err, ref, case)
    _check_root(root, ref, before)
