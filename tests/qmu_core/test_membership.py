"""Reference models: halves, stable seeds when `n_shadow` grows, the membership matrix; class mix."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core.config import AttackConfig, preset
from qmu_core.membership import member_mask, membership_matrix, reference_names, reference_rows
from qmu_core.splits import split_roles
from tasks import train_model


@pytest.fixture(scope="module")
def frame():  # type: ignore[no-untyped-def]
    cfg = preset("tiny")
    return split_roles(cfg.data, cfg.model.feature_spec, seed=0).frame


def test_reference_halves_come_from_the_right_roles(frame) -> None:  # type: ignore[no-untyped-def]
    for reference, roles in (
        ("disjoint", {"shadow_pool"}),
        ("population", {"target_train", "target_holdout", "shadow_pool"}),
    ):
        for name in reference_names(AttackConfig(n_shadow=3, reference=reference)):  # type: ignore[arg-type]
            mask = member_mask(frame, name, seed=0)
            assert set(frame["role"][mask]) == roles
            assert mask.sum() == reference_rows(frame, reference).sum() // 2
    a, b = (member_mask(frame, n, seed=0) for n in ("ref-00", "ref-01"))
    assert not np.array_equal(a, b)  # independent halves


def test_raising_n_shadow_keeps_the_models_already_trained(frame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    eight, sixteen = (AttackConfig(n_shadow=n) for n in (8, 16))
    assert reference_names(sixteen)[:8] == reference_names(eight)
    small = membership_matrix(frame, reference_names(eight), seed=0)
    large = membership_matrix(frame, reference_names(sixteen), seed=0)
    assert small.equals(large.iloc[: len(small)].reset_index(drop=True))
    # each model's training task key depends on its name, not on how many models there are
    cfg = preset("tiny")
    from qmu_core.artifacts import ArtifactRef

    splits = ArtifactRef(stage="splits", key="splits-v5-000000000000", root=tmp_path)
    keys = {
        n: train_model.plan(
            splits=splits, model=cfg.model, train=cfg.train, classes=cfg.data.classes, which=n, seed=0
        ).key
        for n in reference_names(sixteen)
    }
    assert len(set(keys.values())) == 16
    assert (
        keys["ref-03"]
        == train_model.plan(
            splits=splits, model=cfg.model, train=cfg.train, classes=cfg.data.classes, which="ref-03", seed=0
        ).key
    )


def test_the_membership_matrix_is_models_by_records(frame) -> None:  # type: ignore[no-untyped-def]
    names = reference_names(AttackConfig(n_shadow=3))
    matrix = membership_matrix(frame, names, seed=0)
    assert len(matrix) == 3 * len(frame) and list(matrix.columns) == ["model_id", "sample_id", "is_member"]
    wide = matrix.pivot(index="model_id", columns="sample_id", values="is_member")
    for name in names:
        np.testing.assert_array_equal(wide.loc[name, frame["sample_id"]].to_numpy(), member_mask(frame, name, seed=0))


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_members_and_non_members_have_the_same_class_mix(name: str) -> None:
    cfg = preset(name)
    out = split_roles(cfg.data, cfg.model.feature_spec, seed=3).frame
    share = out.groupby("role")["label"].value_counts(normalize=True).unstack(fill_value=0.0)
    n_train, n_holdout = cfg.data.n_target_train, cfg.data.n_target_holdout
    gap = (share.loc["target_train"] - share.loc["target_holdout"]).abs().max()
    assert gap <= 1.0 / n_train + 1.0 / n_holdout, share  # at most one record per class off
