"""The membership rule: which records each model was trained on.

* ``target``: all ``target_train`` rows; every model derived from it (unlearned) keeps that set;
* ``oracle``: ``target_train`` rows outside the forget set (retrain from scratch);
* ``shadow-<i>`` (``attack.reference=disjoint``): a seeded random half of ``shadow_pool``;
* ``ref-<i>`` (``attack.reference=population``): a seeded random half of every candidate record
  (``target_train``, ``target_holdout`` and ``shadow_pool``), as in the LiRA paper.

Each reference model's half depends only on the root seed and its own name, so raising
``attack.n_shadow`` from 8 to 16 keeps the first 8 models (and their cached training) and adds 8.
`membership_matrix` is the models x records table the attacks read. `shadow_warnings` says,
from the config alone, when the reference models' training sets are too small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qmu_core.config import AttackConfig, DataConfig, derive_seed
from qmu_core.errors import ConfigError

__all__ = [
    "MIN_SHADOW_PER_CLASS",
    "REFERENCE_ROLES",
    "held_out_mask",
    "member_mask",
    "membership_matrix",
    "reference_names",
    "reference_rows",
    "request_rows",
    "shadow_warnings",
    "true_members",
]

# Roles a reference model draws its training half from, per `attack.reference`.
REFERENCE_ROLES = {
    "disjoint": ("shadow_pool",),
    "population": ("target_train", "target_holdout", "shadow_pool"),
}
_PREFIX = {"disjoint": "shadow", "population": "ref"}

# Below this many training records per class (on average), a shadow model cannot learn each class.
MIN_SHADOW_PER_CLASS = 2


def reference_names(attack: AttackConfig) -> list[str]:
    """Names of the reference models: ``shadow-00``, ... (disjoint) or ``ref-00``, ... (population)."""
    return [f"{_PREFIX[attack.reference]}-{i:02d}" for i in range(attack.n_shadow)]


def reference_rows(splits: pd.DataFrame, reference: str) -> np.ndarray:
    """Boolean mask of the rows reference models of kind `reference` draw their halves from."""
    return splits["role"].isin(REFERENCE_ROLES[reference]).to_numpy()


def request_rows(splits: pd.DataFrame, request: str) -> np.ndarray:
    """Boolean mask of the records the deletion request `request` deletes from any model trained on them.

    A class request (``"class"``) deletes every record of the forget class, whatever its role (a
    reference model's own training half has some); a sample request (``"samples"``) the requested
    ``target_train`` records. A model's own request is its `member_mask` and this; for the target,
    exactly its forget set.
    """
    forget = splits["is_forget"].to_numpy()
    return forget if request == "class" else forget & (splits["role"].to_numpy() == "target_train")


def held_out_mask(splits: pd.DataFrame, which: str, *, seed: int) -> np.ndarray:
    """Records model `which` could have drawn and did not: the target's holdout; a reference model's other half."""
    if which in ("target", "oracle"):
        return (splits["role"] == "target_holdout").to_numpy()
    reference = next((r for r, prefix in _PREFIX.items() if which.startswith(prefix + "-")), None)
    if reference is None:
        raise ConfigError(f"Unknown model name {which!r}; use target, oracle, shadow-<i> or ref-<i>.")
    return reference_rows(splits, reference) & ~member_mask(splits, which, seed=seed)


def member_mask(splits: pd.DataFrame, which: str, *, seed: int) -> np.ndarray:
    """Boolean mask of the rows of `splits` that model `which` trains on (module doc)."""
    role = splits["role"].to_numpy()
    if which == "target":
        return role == "target_train"
    if which == "oracle":
        return (role == "target_train") & ~splits["is_forget"].to_numpy()
    for reference, prefix in _PREFIX.items():
        if which.startswith(prefix + "-"):
            pool = np.flatnonzero(reference_rows(splits, reference))
            rng = np.random.default_rng(derive_seed(seed, "shadow-members", which))
            chosen = rng.choice(pool, size=len(pool) // 2, replace=False)
            mask = np.zeros(len(splits), dtype=bool)
            mask[chosen] = True
            return mask
    raise ConfigError(f"Unknown model name {which!r}; use target, oracle, shadow-<i> or ref-<i>.")


def membership_matrix(splits: pd.DataFrame, names: Sequence[str], *, seed: int) -> pd.DataFrame:
    """The models x records membership table (long form: ``model_id``, ``sample_id``, ``is_member``).

    One row per (reference model, record of the split), in the split's record order.
    """
    ids = splits["sample_id"].to_numpy()
    return pd.DataFrame(
        {
            "model_id": np.repeat(np.asarray(list(names), dtype=object), len(ids)),
            "sample_id": np.tile(ids, len(names)),
            "is_member": np.concatenate([member_mask(splits, n, seed=seed) for n in names])
            if names
            else np.zeros(0, bool),
        }
    )


def true_members(outputs: pd.DataFrame) -> np.ndarray:
    """Which rows of a model's `outputs` were in that model's training set.

    The target and every model derived from it (unlearned) were trained on all
    ``target_train`` rows; the retrain oracle on those outside the forget set.
    """
    members = (outputs["role"] == "target_train").to_numpy()
    if str(outputs["model_id"].iloc[0]) == "oracle":
        members = members & ~outputs["is_forget"].to_numpy()  # to_numpy() may be read-only (pandas 3)
    return members


def shadow_warnings(data: DataConfig, attack: AttackConfig) -> list[str]:
    """Warnings (allowed but suspicious) about the shadow models' training sets.

    Each of the `attack.n_shadow` reference models trains on half of the rows it draws from (the
    pool, or every candidate record under ``population``). The rule:

    * fewer than `MIN_SHADOW_PER_CLASS` records per class (on average): the shadows cannot learn
      every class, so their outputs, and the attack fitted on them, mean little;
    * otherwise, fewer than half as many records as the target trains on: shadows trained on much
      less data overfit differently from the target, so the attack is miscalibrated for it.
    """
    if attack.reference == "disjoint":
        drawn, source = data.n_shadow_pool, f"data.n_shadow_pool={data.n_shadow_pool}"
    else:
        drawn = data.n_target_train + data.n_target_holdout + data.n_shadow_pool
        source = f"the {drawn} candidate records (attack.reference=population)"
    per_shadow = drawn // 2
    n_classes = len(data.classes)
    head = (
        f"each of the attack.n_shadow={attack.n_shadow} reference models trains on {per_shadow} records "
        f"(half of {source})"
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
