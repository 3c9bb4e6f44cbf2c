"""The split of records into roles, with the reduced features (the `splits` stage).

Roles (the README's vocabulary):

* ``target_train``: target members, the target model's training set;
* ``target_holdout``: target non-members, held out; the attack's negative control;
* ``shadow_pool``: disjoint records the attacker trains shadow models on;
* ``test``: records for retain / forget accuracy.

The forget set is the ``target_train`` rows of the deletion request (``data.forget``): the
class ``data.forget_class``, or the sample_ids ``data.forget_ids`` (`apply_request`, on top of
the split of `base_data`, so a sample request changes no record, role or feature). The table's
``x`` column holds the model features (`qmu_core.features.FeatureMap`), ``pixels`` the flattened
image scaled to [-1, 1] (``2 * p - 1`` for ``p`` in [0, 1]).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import DataConfig, FeatureSpec, derive_seed
from qmu_core.datasets import load_dataset
from qmu_core.errors import DataError
from qmu_core.features import FeatureMap
from qmu_core.provenance import SplitFacts

__all__ = [
    "ROLES",
    "SplitTable",
    "apply_request",
    "base_data",
    "feature_map_ref",
    "read_splits",
    "request_hash",
    "split_roles",
]

ROLES = ("target_train", "target_holdout", "shadow_pool", "test")


@dataclass(frozen=True)
class SplitTable:
    """The split table with its facts, as stages read it."""

    frame: pd.DataFrame
    facts: SplitFacts

    @property
    def image_side(self) -> int:
        """Image height (= width) in pixels."""
        return self.facts.image_side


def split_roles(data: DataConfig, spec: FeatureSpec, *, seed: int) -> Output:
    """Sample records without replacement, assign roles and reduce features.

    Returns:
        The `splits` table (one row per record: ``sample_id``, ``label``, ``role``,
        ``is_forget``, ``x``, ``pixels``), its `SplitFacts`, and the fitted feature map as the
        ``feature_map`` companion table.

        Its warnings name records whose image is constant (every pixel equal, e.g. all black).

    Raises:
        DataError: If a label of `data.classes` does not occur in the dataset, or the dataset has
            fewer records of `data.classes` than the split needs.
    """
    ds = load_dataset(data, seed=seed)
    present = sorted(int(c) for c in np.unique(ds.labels))
    missing = [c for c in data.classes if c not in present]
    if missing:
        named = (
            " Its labels are names, numbered in sorted order: "
            + ", ".join(f"{k} = {v!r}" for k, v in list(ds.label_names.items())[:20])
            + "; data.classes and data.forget_class use those numbers."
            if ds.label_names
            else ""
        )
        raise DataError(
            f"data.classes={list(data.classes)} asks for labels {missing} that {ds.source} does not have "
            f"(its labels: {present}); each would be a model output no record trains. Remove them from "
            f"data.classes.{named}"
        )
    keep = np.flatnonzero(np.isin(ds.labels, data.classes))
    need = data.n_records
    if len(keep) < need:
        raise DataError(
            f"The split needs {need} records (n_target_train + n_target_holdout + n_shadow_pool "
            f"+ n_test) of classes {list(data.classes)}, but {ds.source} has only {len(keep)}. "
            "Lower those counts or use a larger dataset."
        )
    rng = np.random.default_rng(derive_seed(seed, "split"))
    sizes = [data.n_target_train, data.n_target_holdout, data.n_shadow_pool, data.n_test]
    if data.members:
        chosen, roles = _given_members(data, ds.labels, keep, ds.source, rng)
    else:
        chosen = rng.choice(keep, size=need, replace=False)
        chosen, roles = _stratify(chosen, ds.labels[chosen], sizes)
    labels = ds.labels[chosen]
    flat = ds.images[chosen].reshape(need, -1)
    train_rows = roles == "target_train"
    is_forget = labels == data.forget_class
    if not np.any(is_forget & train_rows):
        raise DataError(
            f"No target_train record has the forget class {data.forget_class}; raise "
            "data.n_target_train or change data.forget_class."
        )
    fmap = FeatureMap.fit(flat[train_rows], spec)
    frame = pd.DataFrame(
        {
            "sample_id": chosen.astype(np.int64),
            "label": labels,
            "role": roles,
            "is_forget": is_forget,
            "x": list(fmap.transform(flat)),
            "pixels": list((flat * 2.0 - 1.0).astype(np.float32)),
        }
    )
    facts = SplitFacts(
        source=ds.source,
        label_names={str(k): v for k, v in ds.label_names.items()} if ds.label_names else None,
        image_side=ds.side,
        counts={r: int(n) for r, n in zip(ROLES, sizes, strict=True)},
        forget_in_train=int(np.sum(is_forget & train_rows)),
        forget_class=data.forget_class,
        request="class",
        forget_ids_sha256=request_hash(chosen[is_forget & train_rows]),
    )
    out = Output(
        frame, facts, companions={"feature_map": fmap.to_frame()}, warnings=_constant_images(flat, chosen, ds.source)
    )
    return out if data.forget == "class" else apply_request(out, data)


def base_data(data: DataConfig) -> DataConfig:
    """`data` without a sample request: what the records, roles and features depend on.

    The target and the reference models train on the split of `base_data` (a class request is
    its own base), so a sample request reuses them; `apply_request` then marks the request.
    """
    return data.model_copy(update={"forget": "class", "forget_ids": ()})


def request_hash(sample_ids: np.ndarray) -> str:
    """SHA-256 of the sorted deleted sample_ids (``"1,5,9"``): names a request without listing it."""
    text = ",".join(str(int(i)) for i in sorted(int(v) for v in sample_ids))
    return hashlib.sha256(text.encode()).hexdigest()


def apply_request(base: Output, data: DataConfig) -> Output:
    """The split `base` (of `base_data`) with the sample request ``data.forget_ids`` marked.

    ``is_forget`` then marks the requested ``target_train`` records and, as the attacks'
    non-member control, the ``target_holdout`` records of the requested records' classes; rows,
    features and the feature map are those of `base`. A class request returns `base` unchanged.

    Raises:
        DataError: If the request names sample_ids that are not target training records of this
            split, or deletes every training record.
    """
    if data.forget == "class":
        return base
    frame = base.frame
    roles, chosen, labels = frame["role"].to_numpy(), frame["sample_id"].to_numpy(), frame["label"].to_numpy()
    train_rows = roles == "target_train"
    requested = np.array(data.forget_ids, dtype=np.int64)
    position = {int(i): k for k, i in enumerate(chosen)}
    not_drawn = [int(i) for i in requested if int(i) not in position]
    elsewhere = {int(i): str(roles[position[int(i)]]) for i in requested if int(i) in position}
    elsewhere = {i: r for i, r in elsewhere.items() if r != "target_train"}
    if not_drawn or elsewhere:
        problems = []
        if not_drawn:
            problems.append(f"{len(not_drawn)} are not in this split at all ({_shown(not_drawn)})")
        if elsewhere:
            problems.append(
                f"{len(elsewhere)} are not training records ("
                + ", ".join(f"{i}: {r}" for i, r in list(elsewhere.items())[:10])
                + (", ..." if len(elsewhere) > 10 else "")
                + ")"
            )
        raise DataError(
            f"data.forget_ids asks to delete {len(requested)} records, but " + "; ".join(problems) + ". "
            "Only the target's training records can be deleted; with this data config and run.seed they "
            f"are sample_ids such as {_shown(sorted(int(i) for i in chosen[train_rows])[:8])} (the splits "
            "Parquet of a run lists them all, role == 'target_train')."
        )
    forget_train = train_rows & np.isin(chosen, requested)
    if np.all(forget_train[train_rows]):
        raise DataError(
            f"The deletion request covers all {int(train_rows.sum())} target training records: nothing would be "
            "retained and the oracle would have no data. Delete fewer records, or raise data.n_target_train."
        )
    control = (roles == "target_holdout") & np.isin(labels, labels[forget_train])
    facts = base.facts
    if not isinstance(facts, SplitFacts):
        raise DataError("apply_request needs a split with its SplitFacts.")
    facts = facts.model_copy(
        update={
            "forget_in_train": int(forget_train.sum()),
            "request": "samples",
            "forget_ids_sha256": request_hash(chosen[forget_train]),
        }
    )
    return Output(
        frame.assign(is_forget=forget_train | control), facts, companions=dict(base.companions), warnings=base.warnings
    )


def _given_members(
    data: DataConfig, labels: np.ndarray, keep: np.ndarray, source: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The split of a model trained elsewhere: exactly the listed records train.

    The other roles are drawn from the rest.

    The other roles are drawn from the records of `data.classes` not listed, stratified by class as
    `_stratify` does (the held-out records then share the members' class mix only as far as the
    listed records follow the data's).
    """
    from qmu_core.members import read_member_ids

    ids = read_member_ids(str(data.members))
    where = f"data.members={data.members!r}"
    outside = ids[ids >= len(labels)]
    if outside.size:
        raise DataError(
            f"{where} lists sample_ids {outside[:5].tolist()} beyond {source}, which has {len(labels)} records "
            f"(sample_ids 0..{len(labels) - 1}). The ids must number the records of this dataset, as QMU does."
        )
    other = ids[~np.isin(labels[ids], data.classes)]
    if other.size:
        raise DataError(
            f"{where} lists records of classes outside data.classes={list(data.classes)} (sample_ids "
            f"{other[:5].tolist()}, labels {sorted(set(labels[other].tolist()))[:5]}). Add those classes to "
            "data.classes, or list only records of the model's classes."
        )
    if len(ids) != data.n_target_train:
        raise DataError(
            f"{where} lists {len(ids)} training records but data.n_target_train is {data.n_target_train}; set "
            f"data.n_target_train={len(ids)} (qmu audit --members does)."
        )
    rest = np.setdiff1d(keep, ids)
    others = data.n_records - len(ids)
    if len(rest) < others:
        raise DataError(
            f"{source} has {len(rest)} records of classes {list(data.classes)} besides the {len(ids)} listed "
            f"members, but the held-out, shadow-pool and test roles need {others}. Lower n_target_holdout, "
            "n_shadow_pool or n_test."
        )
    drawn = rng.choice(rest, size=others, replace=False)
    drawn, roles = _stratify(drawn, labels[drawn], [0, data.n_target_holdout, data.n_shadow_pool, data.n_test])
    return np.concatenate([ids, drawn]), np.concatenate([np.repeat("target_train", len(ids)), roles])


def _shown(ids: list[int]) -> str:
    return ", ".join(str(i) for i in ids[:8]) + (", ..." if len(ids) > 8 else "")


def _stratify(chosen: np.ndarray, labels: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Order the drawn records so every role gets the same class mix (up to one record per class).

    Records are dealt in label order, each class spread evenly over the positions 0..N-1 (its
    k-th record at the centre of its k-th share), and the roles take consecutive position
    ranges, so each role holds each class in proportion to its size. Members and non-members
    then have the same class mix, and a membership score cannot ride on class frequency.
    """
    n = len(chosen)
    position = np.empty(n)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        position[where] = (np.arange(len(where)) + 0.5) * n / len(where)
    order = np.argsort(position, kind="stable")
    return chosen[order], np.repeat(np.array(ROLES), sizes)


def _constant_images(flat: np.ndarray, sample_ids: np.ndarray, source: str) -> tuple[str, ...]:
    """A warning if some drawn records have a constant image (all pixels equal: no information)."""
    constant = np.ptp(flat, axis=1) == 0
    if not constant.any():
        return ()
    ids = sample_ids[constant]
    shown = ", ".join(str(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
    return (
        f"{int(constant.sum())} of {len(flat)} records drawn from {source} have a constant image (every pixel "
        f"the same, e.g. all black): sample_id {shown}. They carry no information; check the source files "
        "if this is unexpected.",
    )


def read_splits(ref: ArtifactRef) -> SplitTable:
    """Read a `splits` artifact with its typed facts."""
    return SplitTable(artifacts.read(ref), artifacts.read_facts(ref, SplitFacts))


def feature_map_ref(splits: ArtifactRef) -> ArtifactRef:
    """The `feature_map` artifact written together with `splits`."""
    return artifacts.companion(splits, "feature_map")
