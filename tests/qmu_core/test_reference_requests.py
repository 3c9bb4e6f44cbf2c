"""A reference model's own deletion request (U-LiRA's unlearned side, `qmu_core.jobs.deletion_request`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qmu_core import artifacts, jobs
from qmu_core.config import UnlearnConfig, preset
from qmu_core.membership import held_out_mask, member_mask, request_rows
from qmu_core.splits import SplitTable

CASE = {"n_qubits": 4, "layers": 2}


def test_a_reference_model_forgets_the_requested_records_of_its_own_half(trained_model: Any) -> None:
    _, table, qnn = trained_model(CASE)
    cfg, frame = preset("tiny"), table.frame
    request, _ = jobs.deletion_request(
        table, qnn, cfg.model, cfg.data.classes, cfg.unlearn, seed=0, trained_on="ref-00", membership_seed=0
    )
    half = member_mask(frame, "ref-00", seed=0)
    forget = half & (frame["label"] == cfg.data.forget_class).to_numpy()  # a class request: every record of it
    assert len(request.x_forget) == forget.sum() > 0
    assert len(request.x_retain) == (half & ~forget).sum()
    assert np.array_equal(request_rows(frame, "class") & half, forget)
    # the guard reads records the reference model never drew, of the classes it keeps
    held = held_out_mask(frame, "ref-00", seed=0)
    assert not (held & half).any() and request.guard is not None
    assert held.sum() + half.sum() == frame["role"].isin(["target_train", "target_holdout", "shadow_pool"]).sum()
    target, _ = jobs.deletion_request(table, qnn, cfg.model, cfg.data.classes, cfg.unlearn, seed=0)
    assert len(target.x_forget) == (frame["is_forget"] & (frame["role"] == "target_train")).sum()  # unchanged


def test_a_reference_model_that_drew_none_of_the_requested_records_is_left_as_it_is(trained_model: Any) -> None:
    ref, table, _ = trained_model(CASE)
    cfg, frame = preset("tiny"), table.frame
    not_drawn = (frame["role"] == "target_train").to_numpy() & ~member_mask(frame, "ref-00", seed=0)
    ids = frame.loc[not_drawn, "sample_id"].to_numpy()[:3]
    asked = frame.assign(is_forget=frame["sample_id"].isin(ids).to_numpy())
    samples = SplitTable(asked, table.facts.model_copy(update={"request": "samples"}))
    weights = artifacts.read(ref)
    out = jobs.unlearn(
        weights, samples, cfg.model, cfg.data.classes, UnlearnConfig(), cfg.train,
        method="ga", seed=0, trained_on="ref-00", membership_seed=0,
    )  # fmt: skip
    assert out.facts is not None and out.facts.passes == 0 and out.facts.note == "nothing to unlearn"
    assert out.frame["model_id"].iloc[0] == "ref-00-unlearned-ga"
    pd.testing.assert_series_equal(out.frame["values"], weights["values"], check_names=False)
