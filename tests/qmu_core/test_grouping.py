"""Reference models trained together (`qmu_core.grouping`, `qmu_core.jobs.train_many`)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmu_core import artifacts, frames, jobs
from qmu_core.config import preset
from qmu_core.errors import ConfigError
from qmu_core.grouping import TrainingGroups, chunks
from qmu_core.membership import reference_names
from qmu_core.qnn import training
from qmu_core.splits import read_splits, split_roles


@pytest.fixture(scope="module", params=["tiny", "default"])
def setting(request, tmp_path_factory) -> tuple:
    """A stored split and a short recipe: `tiny` (angle, TFQ's Adjoint) and `default` (HQNN, the native op)."""
    cfg = preset(request.param, attack={"n_shadow": 3}, train={"epochs": 2})
    ref = artifacts.plan("splits", {"test": request.param}, root=tmp_path_factory.mktemp(request.param))
    artifacts.write_output(split_roles(cfg.data, cfg.model.feature_spec, seed=0), ref, {})
    return cfg, ref


def _flat(out: artifacts.Output) -> np.ndarray:
    """Every weight of a `model` artifact's frame, in one vector."""
    found = frames.arrays(out.frame, dtype=np.float32)
    return np.concatenate([found[k].ravel() for k in sorted(found)])


def test_chunks_are_sorted_consecutive_and_balanced() -> None:
    names = [f"ref-{i:02d}" for i in (4, 0, 3, 1, 2)]
    assert chunks(names, 2) == [["ref-00", "ref-01", "ref-02"], ["ref-03", "ref-04"]]
    assert chunks(names, 9) == [[n] for n in sorted(names)]
    assert chunks(names[:1], 2) == [["ref-04"]]


def test_a_model_trained_with_others_equals_training_alone(setting) -> None:
    cfg, ref = setting
    names = reference_names(cfg.attack)
    common = {"model": cfg.model, "train_cfg": cfg.train, "classes": cfg.data.classes, "seed": cfg.run.seed}
    together = jobs.train_many_split(ref, whiches=names, **common)
    assert [o.facts.which for o in together] == names
    single = jobs.train_split(ref, cfg.model, cfg.train, cfg.data.classes, which=names[1], seed=cfg.run.seed)
    assert together[1].facts.n_train == single.facts.n_train
    for mine, theirs in zip(together[1].facts.history, single.facts.history, strict=True):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-4, abs=1e-5)
    # The same model: equal predictions. Not equal weights: the last layer's Z rotations commute with
    # the <Z> read-out, so their gradient is 0 up to rounding, which Adam scales up to full steps.
    table = read_splits(ref)
    x = training.model_inputs(table.frame, cfg.model)

    def probs(out: artifacts.Output) -> np.ndarray:
        return training.predict_proba(jobs.load_model(out.frame, table, cfg.model, cfg.data.classes), x)

    np.testing.assert_allclose(probs(together[1]), probs(single), atol=1e-4)
    assert not np.array_equal(_flat(together[0]), _flat(together[1]))  # different models really differ


def _in_process(calls: list):
    def run(fn, *args, progress=None, **kwargs):
        calls.append(kwargs["whiches"])
        return fn(*args, progress=progress, **kwargs)

    return run


def _request_all(groups: TrainingGroups, cfg, ref, names: list[str], progress: dict | None = None) -> dict:
    """Every name requested at once, from its own thread (as the flow's stages do); name -> Output or error."""
    got: dict = {}

    def request(name: str) -> None:
        report = None if progress is None else (lambda step, steps, values, n=name: progress[n].append(step))
        try:
            got[name] = groups.train(
                ref, cfg.model, cfg.train, cfg.data.classes, which=name, group=names, seed=cfg.run.seed, progress=report
            )
        except Exception as exc:  # noqa: BLE001 - the test reads it
            got[name] = exc

    threads = [threading.Thread(target=request, args=(n,)) for n in reversed(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_each_chunk_trains_once_and_a_rebuild_gets_the_same_bits(setting, monkeypatch) -> None:
    cfg, ref = setting
    monkeypatch.setattr("qmu_core.workers.n_workers", lambda requested=0: 2)
    calls: list = []
    groups = TrainingGroups(run=_in_process(calls))
    names = reference_names(cfg.attack)
    epochs: dict[str, list[int]] = {n: [] for n in names}
    got = _request_all(groups, cfg, ref, names, epochs)
    assert sorted(map(tuple, calls)) == [tuple(names[:2]), tuple(names[2:])]  # one job per worker
    for n in names:
        assert got[n].facts.which == n
        assert epochs[n] == list(range(1, cfg.train.epochs + 1))  # each stage saw its progress
    # one lost model is rebuilt by its whole chunk: the same bits as the first time
    again = groups.train(ref, cfg.model, cfg.train, cfg.data.classes, which=names[1], group=names, seed=cfg.run.seed)
    assert calls[-1] == names[:2]
    pd.testing.assert_frame_equal(again.frame, got[names[1]].frame)


def test_a_failed_job_fails_every_stage_of_its_chunk(setting, monkeypatch) -> None:
    cfg, ref = setting
    monkeypatch.setattr("qmu_core.workers.n_workers", lambda requested=0: 1)

    def broken(fn, *args, **kwargs):
        raise RuntimeError("disk full while training")

    names = reference_names(cfg.attack)
    got = _request_all(TrainingGroups(run=broken), cfg, ref, names)
    assert {n: str(e) for n, e in got.items()} == dict.fromkeys(names, "disk full while training")


def test_a_name_outside_its_group_is_refused(setting) -> None:
    cfg, ref = setting
    with pytest.raises(ConfigError, match="not in its group"):
        TrainingGroups().train(ref, cfg.model, cfg.train, cfg.data.classes, which="ref-99", group=["ref-00"], seed=0)


def test_read_back_split_has_what_train_many_needs(setting, tmp_path: Path) -> None:
    cfg, ref = setting
    table = read_splits(ref)
    assert table.image_side > 0 and len(table.frame) > 0
