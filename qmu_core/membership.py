"""The membership rule: which records each model was trained on.

* ``target``: all ``target_train`` rows; every model derived from it (unlearned) keeps that set;
* ``oracle``: ``target_train`` rows outside the forget set (retrain from scratch);
* ``shadow-<i>``: a seeded random half of ``shadow_pool`` (independent per i).

`shadow_warnings` says, from the config alone, when the pool is too small for the shadows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qmu_core.config import AttackConfig, DataConfig, derive_seed
from qmu_core.errors import ConfigError

__all__ = ["MIN_SHADOW_PER_CLASS", "member_mask", "shadow_names", "shadow_rows", "shadow_warnings", "true_members"]

# Below this many training records per class (on average), a shadow model cannot learn each class.
MIN_SHADOW_PER_CLASS = 2


def shadow_names(n_shadow: int) -> list[str]:
    """Names of the shadow models: ``shadow-00``, ``shadow-01``, ..."""
    return [f"shadow-{i:02d}" for i in range(n_shadow)]


def member_mask(splits: pd.DataFrame, which: str, *, seed: int) -> np.ndarray:
    """Boolean mask of the rows of `splits` that model `which` trains on (module doc)."""
    role = splits["role"].to_numpy()
    if which == "target":
        return role == "target_train"
    if which == "oracle":
        return (role == "target_train") & ~splits["is_forget"].to_numpy()
    if which.startswith("shadow-"):
        pool = np.flatnonzero(role == "shadow_pool")
        rng = np.random.default_rng(derive_seed(seed, "shadow-members", which))
        chosen = rng.choice(pool, size=len(pool) // 2, replace=False)
        mask = np.zeros(len(splits), dtype=bool)
        mask[chosen] = True
        return mask
    raise ConfigError(f"Unknown model name {which!r}; use target, oracle or shadow-<i>.")


def true_members(outputs: pd.DataFrame) -> np.ndarray:
    """Which rows of a model's `outputs` were in that model's training set.

    The target and every model derived from it (unlearned) were trained on all
    ``target_train`` rows; the retrain oracle on those outside the forget set.
    """
    members = (outputs["role"] == "target_train").to_numpy()
    if str(outputs["model_id"].iloc[0]) == "oracle":
        members = members & ~outputs["is_forget"].to_numpy()  # to_numpy() may be read-only (pandas 3)
    return members


def shadow_rows(splits: pd.DataFrame, shadow_outputs: Sequence[pd.DataFrame], *, seed: int) -> pd.DataFrame:
    """The attack's training rows: every shadow model's outputs on the pool, with ``is_member``."""
    parts = []
    for out in shadow_outputs:
        which = str(out["model_id"].iloc[0])
        out = out.assign(is_member=member_mask(splits, which, seed=seed))
        parts.append(out[out["role"] == "shadow_pool"])
    return pd.concat(parts, ignore_index=True)


def shadow_warnings(data: DataConfig, attack: AttackConfig) -> list[str]:
    """Warnings (allowed but suspicious) about the shadow models' training sets.

    Each of the `attack.n_shadow` shadows trains on ``n_shadow_pool // 2`` records. The rule:

    * fewer than `MIN_SHADOW_PER_CLASS` records per class (on average): the shadows cannot learn
      every class, so their outputs, and the attack fitted on them, mean little;
    * otherwise, fewer than half as many records as the target trains on: shadows trained on much
      less data overfit differently from the target, so the attack is miscalibrated for it.
    """
    per_shadow = data.n_shadow_pool // 2
    n_classes = len(data.classes)
    head = (
        f"each of the attack.n_shadow={attack.n_shadow} shadow models trains on {per_shadow} records "
        f"(half of data.n_shadow_pool={data.n_shadow_pool})"
    )
    if per_shadow < MIN_SHADOW_PER_CLASS * n_classes:
        return [
            f"{head}, {per_shadow / n_classes:.1f} per class for {n_classes} classes: too few to learn every "
            f"class, so the attack learns from near-untrained models. Raise data.n_shadow_pool to at least "
            f"{2 * MIN_SHADOW_PER_CLASS * n_classes}."
        ]
    if 2 * per_shadow < data.n_target_train:
        return [
            f"{head}, under half of the target's data.n_target_train={data.n_target_train}: such shadows "
            "overfit differently from the target, so the attack is miscalibrated for it. Raise "
            f"data.n_shadow_pool to at least {data.n_target_train} ({2 * data.n_target_train} gives each "
            "shadow as many records as the target)."
        ]
    return []
