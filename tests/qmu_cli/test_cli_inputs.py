"""Bad input through `qmu`: one `qmu: error:` line, exit 2, no traceback, before any work.

`qmu run` cases must fail before the flow starts: the `no_flow` fixture replaces the pipeline
module, so a run that got past the checks would exit 1 (ImportError) instead of 2.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from qmu_cli.root import main
from qmu_core import export as export_module
from qmu_core.config import run as run_section


@pytest.fixture
def no_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting the flow impossible: `from flows.pipeline import qmu_pipeline` fails."""
    monkeypatch.setitem(sys.modules, "flows.pipeline", types.ModuleType("flows.pipeline"))


def error_of(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run `qmu argv`, check the error contract (exit 2, one message, no traceback); the message."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("qmu: error: ") and "Traceback" not in err
    return err


# ----------------------------------------------------------------------------- qmu run


@pytest.mark.usefixtures("no_flow")
def test_run_into_an_artifact_root_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    err = error_of(capsys, ["run", "--preset", "tiny", "--set", f"run.artifact_root={tmp_path / 'f'}"])
    assert f"run.artifact_root='{tmp_path / 'f'}' is an existing file, not a directory" in err
    assert "--set run.artifact_root=" in err and (tmp_path / "f").read_text() == "x"


@pytest.mark.usefixtures("no_flow")
def test_run_with_an_empty_artifact_root(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, ["run", "--preset", "tiny", "--set", "run.artifact_root="])
    assert "run.artifact_root='' is empty" in err and "Give a directory" in err


@pytest.mark.usefixtures("no_flow")
def test_run_into_an_unwritable_artifact_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_access = os.access
    monkeypatch.setattr(run_section.os, "access", lambda p, mode: Path(p) != tmp_path and real_access(p, mode))
    err = error_of(capsys, ["run", "--preset", "tiny", "--set", f"run.artifact_root={tmp_path / 'art'}"])
    assert f"run.artifact_root='{tmp_path / 'art'}' is not writable" in err
    assert not (tmp_path / "art").exists()


@pytest.mark.usefixtures("no_flow")
def test_run_with_a_bool_for_an_int(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, ["run", "--preset", "tiny", "--set", "train.epochs=true"])
    assert "train.epochs: Input should be a valid integer (got true); write a whole number such as 3" in err


@pytest.mark.usefixtures("no_flow")
def test_run_with_a_class_the_dataset_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, ["run", "--preset", "tiny", "--set", "data.classes=[0,1,4,99]"])
    assert "data.classes=[0, 1, 4, 99] has labels [99] that data.dataset='digits' does not have" in err


# ----------------------------------------------------------------------------- qmu config


def test_an_int_for_a_float_field_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "train.learning_rate=1"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["learning_rate"] == 1.0


def test_set_of_a_section_object_keeps_the_presets_other_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--preset", "tiny", "--set", 'data={"n_test": 50}']) == 0
    data = json.loads(capsys.readouterr().out)["data"]
    assert data["n_test"] == 50 and data["classes"] == [0, 1, 4, 7] and data["n_target_train"] == 120


def test_a_too_small_shadow_pool_warns(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "config",
        "show",
        "--preset",
        "tiny",
        "--set",
        "data.n_shadow_pool=10",
        "--set",
        "attack.reference=disjoint",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.startswith("qmu: WARNING: each of the attack.n_shadow=2 reference models trains on 5 records")
    assert "Raise data.n_shadow_pool to at least 16" in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[1, 2]", "expected a JSON object {section: {field: value}}, but it holds a JSON list ([1, 2])"),
        (b'{"train": {"epochs": 3}}\xff', "byte 24 is not UTF-8 text (invalid start byte); save the file as UTF-8"),
        (b'{"train": 3}', "section 'train' is 3, but a section must be a JSON object of its fields"),
        (b'{"train": [3]}', "section 'train' is [3], but a section must be a JSON object of its fields"),
        (b'{"trian": {"epochs": 3}}', "'trian' is not a config section. Known: run, data, model"),
        (b'{"train": {"epochs": true}}', "train.epochs: Input should be a valid integer (got true)"),
        (b"", "not valid JSON at line 1, column 1"),
    ],
)
def test_bad_config_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str, no_flow: None
) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(content)
    for command in (["config", "show"], ["run"]):
        err = error_of(capsys, [*command, "--config", str(path)])
        assert f"--config {path}" in err and expected in err


# ----------------------------------------------------------------------------- qmu export


def test_export_onto_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("keep me")
    err = error_of(capsys, ["export", str(tmp_path / "run"), str(tmp_path / "out")])
    assert f"Export destination {tmp_path / 'out'} is an existing file" in err and "new or empty directory" in err
    assert (tmp_path / "out").read_text() == "keep me"


def test_export_into_a_non_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    err = error_of(capsys, ["export", str(tmp_path / "run"), str(tmp_path / "out")])
    assert f"Export destination {tmp_path / 'out'} is not empty (1 entries: notes.txt)" in err
    assert "Choose a new or empty directory" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "is not a readable JSON run summary"),
        ('{"run": {}}', 'has no "artifacts" entry, so it is not a QMU run summary'),
        ('{"artifacts": "x"}', '"artifacts" is a JSON str, not an object {name: path}; the file is damaged'),
    ],
)
def test_export_from_a_malformed_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    summary = tmp_path / "run" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(text)
    err = error_of(capsys, ["export", str(tmp_path / "run"), str(tmp_path / "out")])
    assert str(summary) in err and expected in err
    assert not (tmp_path / "out").exists()


def test_export_of_a_relative_root_run_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a run made in `project` with the default, relative, artifact root
    model = tmp_path / "project" / "data" / "artifacts" / "model" / "model-v1-abc.parquet"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    run_dir = tmp_path / "project" / "data" / "artifacts" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(
        json.dumps({"artifacts": {"before": "data/artifacts/model/model-v1-abc.parquet"}})
    )
    exported = []

    def fake_export(ref: object, out_dir: Path) -> Path:  # no trained model needed
        exported.append(ref)
        return out_dir / "manifest.json"

    monkeypatch.setattr(export_module, "export_model", fake_export)
    monkeypatch.chdir(tmp_path)  # not where the run was made
    assert main(["export", str(run_dir), str(tmp_path / "out")]) == 0, capsys.readouterr().err
    (ref,) = exported
    assert ref.path.resolve() == model.resolve()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- qmu reproduce


@pytest.fixture
def no_reproduce_flow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting the study impossible: `from flows.reproduce import qmu_reproduce` fails."""
    monkeypatch.setitem(sys.modules, "flows.reproduce", types.ModuleType("flows.reproduce"))


@pytest.mark.usefixtures("no_reproduce_flow")
@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--shots", "10,many"], "--shots '10,many': write whole numbers separated by commas"),
        (["--models", "paper,vgg"], "models.1: Input should be 'paper' or 'paper_hqnn'"),
        (["--processors", "sycamore"], "processors.0: Input should be"),
        (["--seeds", "0"], "seeds: Input should be greater than or equal to 1"),
        (["--set", "train.epochs=many"], "the 'paper' run of the study"),
    ],
)
def test_reproduce_refuses_bad_options_before_any_run(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = error_of(capsys, ["reproduce", "--artifact-root", str(tmp_path / "root"), *argv])
    assert says in err, err
    assert not (tmp_path / "root").exists()  # nothing was written
