"""The membership rule: which records each model was trained on.

* ``target``: all ``target_train`` rows; every model derived from it (unlearned) keeps that set;
* ``oracle``: ``target_train`` rows outside the forget set (retrain from scratch);
* ``shadow-<i>``: a seeded random half of ``shadow_pool`` (independent per i).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qmu_core.config import derive_seed
from qmu_core.errors import ConfigError

__all__ = ["member_mask", "shadow_names", "shadow_rows", "true_members"]


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
        members &= ~outputs["is_forget"].to_numpy()
    return members


def shadow_rows(splits: pd.DataFrame, shadow_outputs: Sequence[pd.DataFrame], *, seed: int) -> pd.DataFrame:
    """The attack's training rows: every shadow model's outputs on the pool, with ``is_member``."""
    parts = []
    for out in shadow_outputs:
        which = str(out["model_id"].iloc[0])
        out = out.assign(is_member=member_mask(splits, which, seed=seed))
        parts.append(out[out["role"] == "shadow_pool"])
    return pd.concat(parts, ignore_index=True)
