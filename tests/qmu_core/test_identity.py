"""`Which`: one value for "which model", and the three names it gives (model id, phase, row)."""

from __future__ import annotations

import pytest

from qmu_core.identity import Which, lineup


def test_names_of_every_model_kind_and_repeat() -> None:
    cases = [
        (Which.before(), ("target", "before", "noop", "before")),
        (Which.oracle(), ("oracle", "oracle", "retrain", "oracle")),
        (Which.unlearned("ga"), ("unlearned-ga", "after_ga", "ga", "ga")),
        (Which.unlearned("ga", 1), ("unlearned-ga", "r1/after_ga", "ga", "ga")),
        (Which.before(2), ("target", "r2/before", "noop", "before")),
        (Which.oracle(12), ("oracle", "r12/oracle", "retrain", "oracle")),
    ]
    for which, names in cases:
        assert (which.model_id, which.phase, which.row, which.short) == names
    assert Which.unlearned("salun", 3).title == "r3 after_salun" and Which.oracle().title == "oracle"
    assert Which.unlearned("ga", 1).in_repeat(0) == Which.unlearned("ga")


def test_lineup_is_the_comparisons_row_order() -> None:
    assert [w.row for w in lineup(["ga", "ssd"])] == ["noop", "ga", "ssd", "retrain"]
    assert [w.phase for w in lineup(["ga"], 1)] == ["r1/before", "r1/after_ga", "r1/oracle"]


def test_stored_names_parse_back_at_the_one_boundary() -> None:
    for which in (*lineup(["ga", "finetune"]), *lineup(["rga"], 4)):
        assert Which.of_phase(which.phase) == which
        assert Which.of_model_id(which.model_id) == which.in_repeat(0)
    # names outside the vocabulary: reference models, a model `qmu audit` was given by another name
    for name in ("shadow-00", "ref-3", "before_2", "r0/before", "r1/", "target"):
        assert Which.of_phase(name) is None
    assert Which.of_model_id("shadow-00") is None and Which.of_model_id("unlearned-") is None


def test_only_an_unlearned_model_has_a_method() -> None:
    with pytest.raises(ValueError, match="method"):
        Which("before", method="ga")
    with pytest.raises(ValueError, match="method"):
        Which("unlearned")
    with pytest.raises(ValueError, match="negative"):
        Which.oracle(-1)
