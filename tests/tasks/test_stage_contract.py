"""The stage contract: one key per call, stable; bodies are plain functions; tasks stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from prefect.states import State

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import TrainConfig, preset
from qmu_core.errors import ArtifactError
from qmu_core.provenance import ModelFacts, SplitFacts
from tasks import audit_models, evaluate, membership_matrix, model_outputs, split_data, train_model, unlearn
from tasks._stage import Stage

TASKS = Path(__file__).resolve().parents[2] / "tasks"
STAGES = [split_data, train_model, model_outputs, unlearn, membership_matrix, audit_models, evaluate]


def _split_params(root: Path, **data: object) -> dict:
    cfg = preset("tiny")
    return {
        "data": cfg.data.model_copy(update=data),
        "features": cfg.model.feature_spec,
        "seed": 0,
        "source": "digits:test",
        "root": root,
    }


def test_the_key_ignores_the_root_and_follows_every_input(tmp_path: Path) -> None:
    a = split_data.plan(**_split_params(tmp_path / "a"))
    b = split_data.plan(**_split_params(tmp_path / "b"))
    c = split_data.plan(**_split_params(tmp_path / "a", n_test=61))
    assert a.key == b.key != c.key
    assert a.root == tmp_path / "a" and a.path.parent == tmp_path / "a" / "splits"


def test_the_split_key_is_stable_across_code_changes(tmp_path: Path) -> None:
    # A golden key: it changes only if the tiny preset, the key scheme or the splits version does
    # (or the data section gains a field: fda97f234f9b since data.forget and data.forget_ids).
    assert split_data.plan(**_split_params(tmp_path)).key == "splits-v6-fda97f234f9b"


def test_upstream_keys_and_sections_enter_the_key(tmp_path: Path) -> None:
    splits = ArtifactRef(stage="splits", key="splits-v3-000000000000", root=tmp_path)
    cfg = preset("tiny")
    params = {
        "splits": splits,
        "model": cfg.model,
        "train": cfg.train,
        "classes": cfg.data.classes,
        "which": "target",
        "seed": 0,
    }
    base = train_model.plan(**params).key
    assert train_model.plan(**{**params, "train": TrainConfig(epochs=4)}).key != base
    other = splits.model_copy(update={"key": "splits-v3-111111111111"})
    assert train_model.plan(**{**params, "splits": other}).key != base
    assert train_model.plan(**{**params, "splits": splits.model_copy(update={"root": tmp_path / "x"})}).key == base


def test_reuse_is_decided_from_the_root_and_checksums(tmp_path: Path) -> None:
    params = _split_params(tmp_path)
    ref = split_data.task.fn(**params)
    again = split_data.task.fn(**params)
    assert isinstance(again, State) and again.name == "Cached" and again.result() == ref
    # truncate the file: rebuilt, not handed on
    data = ref.path.read_bytes()
    ref.path.write_bytes(data[: len(data) // 2])
    assert split_data.task.fn(**params) == ref and len(ref.path.read_bytes()) == len(data)
    assert artifacts.verify(ref, code=split_data.code) is None  # rebuilt and sealed again
    # a companion that no longer matches its checksum also forces a rebuild
    fmap = artifacts.companion(ref, "feature_map").path
    fmap.write_bytes(fmap.read_bytes() + b"x")
    assert not isinstance(split_data.task.fn(**params), State)
    # an integrity record from other code is not trusted
    seal = artifacts.seal_path(ref)
    seal.write_text(seal.read_text().replace(split_data.code, "0" * 16))
    assert not isinstance(split_data.task.fn(**params), State)
    assert isinstance(split_data.task.fn(**params), State)


def test_a_tampered_integrity_record_runs_no_code(tmp_path: Path) -> None:
    params = _split_params(tmp_path)
    ref = split_data.task.fn(**params)
    seal = artifacts.seal_path(ref)
    seal.write_text('{"files": "builtins.print", "code": "os.system"}')
    assert artifacts.verify(ref, code=split_data.code) is not None
    assert split_data.task.fn(**params) == ref  # rebuilt; the record is data, never imported


def test_bodies_are_plain_functions_returning_outputs(tmp_path: Path) -> None:
    out = split_data.fn(**_split_params(tmp_path))
    assert isinstance(out, Output) and isinstance(out.facts, SplitFacts)
    assert set(out.companions) == {"feature_map"} and len(out.frame) == 360
    assert not any(tmp_path.iterdir())  # the body writes nothing; the stage does


def test_the_task_writes_the_body_output_at_the_planned_ref(tmp_path: Path) -> None:
    params = _split_params(tmp_path)
    ref = split_data.task.fn(**params)  # the Prefect task's function, run without a server
    assert ref == split_data.plan(**params) and artifacts.verify(ref, code=split_data.code) is None
    assert artifacts.read_facts(ref, SplitFacts).image_side == 8
    assert artifacts.exists(artifacts.companion(ref, "feature_map"))
    weights = train_model.task.fn(
        splits=ref,
        model=preset("tiny").model,
        train=TrainConfig(epochs=1, batch_size=32),
        classes=preset("tiny").data.classes,
        which="shadow-00",
        seed=0,
    )
    facts = artifacts.read_facts(weights, ModelFacts)
    assert facts.which == "shadow-00" and facts.n_train == 60 and len(facts.history) == 1


def test_a_body_must_return_an_output(tmp_path: Path) -> None:
    def bad(root: Path) -> Output:
        return "not an output"  # type: ignore[return-value]

    with pytest.raises(ArtifactError, match="must return"):
        Stage(bad, "metrics").task.fn(root=tmp_path)
    with pytest.raises(ArtifactError, match="Unknown stage"):
        Stage(bad, "nonsense")


def _body_lines(fn: ast.FunctionDef) -> int:
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
    return body[-1].end_lineno - body[0].lineno + 1  # type: ignore[operator]


@pytest.mark.parametrize(
    "path", sorted(p for p in TASKS.glob("*.py") if not p.name.startswith("_")), ids=lambda p: p.name
)
def test_task_bodies_are_thin_and_import_no_other_task_module(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert _body_lines(node) <= 15, (
                f"{path.name}:{node.name} has {_body_lines(node)} lines; move work to qmu_core"
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tasks."):
            assert node.module == "tasks._stage", f"{path.name} imports {node.module}"


def test_every_stage_has_one_task_name() -> None:
    names = [s.task.name for s in STAGES]
    assert len(names) == len(set(names)) and all(isinstance(s, Stage) for s in STAGES)


def test_output_warnings_reach_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import pandas as pd

    def noisy(root: Path) -> Output:
        table = pd.DataFrame(
            {"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [1.0]}
        )
        return Output(table, warnings=("only 3 shadow records: the attack is weak",))

    with caplog.at_level("WARNING"):
        ref = Stage(noisy, "metrics").task.fn(root=tmp_path)
    assert artifacts.exists(ref)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "only 3 shadow records: the attack is weak"
    ]


def test_changed_mnist_bytes_change_the_split_key(tmp_path: Path, mnist_dir: Path) -> None:
    import shutil

    from qmu_core.config import DataConfig
    from qmu_core.datasets import fingerprint

    copy = tmp_path / "mnist"
    copy.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_dir / f, copy / f)
    data = DataConfig(dataset="mnist", mnist_path=str(copy))
    same_place_same_bytes = fingerprint(data)
    assert fingerprint(DataConfig(dataset="mnist", mnist_path=str(mnist_dir))) == same_place_same_bytes
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[-1] ^= 0xFF  # other bytes at the same path
    labels.write_bytes(bytes(raw))
    changed = fingerprint(data)
    assert changed != same_place_same_bytes
    params = _split_params(tmp_path)
    assert (
        split_data.plan(**{**params, "source": changed}).key
        != split_data.plan(**{**params, "source": same_place_same_bytes}).key
    )


def test_stages_writing_one_artifact_kind_never_share_a_key() -> None:
    """Two bodies of one stage (train_model and retrain_reference both write `model`) take different key inputs.

    A key is the stage name and the inputs by name, so bodies whose keyed parameter names are equal
    could plan the same key for different artifacts, and the second would overwrite the first.
    """
    import importlib
    import inspect
    import pkgutil

    import tasks

    by_stage: dict[str, dict[frozenset[str], str]] = {}
    for info in pkgutil.iter_modules(tasks.__path__):
        module = importlib.import_module(f"tasks.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Stage) and value.fn.__module__ == module.__name__:
                keyed = frozenset(inspect.signature(value.fn).parameters) - artifacts.NOT_IN_KEY
                clash = by_stage.setdefault(value.stage, {}).get(keyed)
                assert clash is None, f"{name} and {clash} write `{value.stage}` with the same key inputs"
                by_stage[value.stage][keyed] = name
    assert len(by_stage["model"]) >= 3  # train_model, unlearn, unlearn_reference, retrain_reference
