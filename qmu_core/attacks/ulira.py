"""U-LiRA: can an attacker tell an unlearned model from one retrained without the records?

Hayes et al., "Inexact Unlearning Needs More Careful Evaluations to Avoid a False Sense of
Privacy" (SaTML 2025). A population membership attack asks "member or not?"; a deletion report
must answer "does this model look unlearned, or retrained?". Per forget-set record ``r``:

* the *unlearned* side: the statistic of reference models that trained on ``r`` and were then
  put through the same unlearning method with their own deletion request;
* the *retrained* side: the statistic of reference models that never trained on any record of
  the request (`qmu_core.membership.request_rows`).

Each side gets a Gaussian per record (`fit`): the per-record mean, and one variance per side
pooled over records (within-record deviations over within-record degrees of freedom, as LiRA's
fixed variance, `qmu_core.attacks.lira`: with a handful of reference models per record a
per-record variance is noise). A record with no observation on one side takes the other side's
mean plus the mean shift between the sides over the records that have both. The statistic is
LiRA's (`qmu_core.attacks.lira.lira_statistic`: the logit-scaled confidence under ``probs``),
and a record's score is the log likelihood ratio ``log N(s; unlearned) - log N(s; retrained)``
summed over the statistic's dimensions (`score`).

The U-LiRA AUC of an audited model (`auc`) is the AUC of its forget records' scores against the
null: the scores of the retrained reference models themselves, each scored by Gaussians fitted
without it (leave one out, `null_scores`), over every (model, record) it observes. 0.5: the
audited model is as retrained as retrained models are; 1: every record gives it away. A single
retrained control model would not do: one model's offset moves all its records' scores together,
so its AUC against another single model is far from 0.5 by chance (0.71 to 0.77 for three
oracles on `default`-sized data, measured). The audited model is one draw too, which no
resampling of its records shows, so its 95% CI adds to the records' bootstrap error the spread
of the null models' own AUCs, each against the others (`null_spread`); over repeats the seeds'
spread adds the rest (`qmu_core.unlearning.compare`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qmu_core import artifacts, metrics
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.attacks.audit import _in_split_order
from qmu_core.attacks.base import Observations, ThreatModel
from qmu_core.attacks.lira import VAR_FLOOR_ABS, lira_statistic
from qmu_core.config import AttackConfig, derive_seed
from qmu_core.identity import Which
from qmu_core.membership import member_mask, request_rows
from qmu_core.provenance import ULiraFacts
from qmu_core.splits import read_splits

__all__ = ["ULira", "audit", "audit_artifacts", "auc", "fit", "null_scores", "null_spread"]


@dataclass(frozen=True)
class _Side:
    mean: np.ndarray  # (R, D), NaN where the record has no observation
    var: np.ndarray  # (D,) pooled over records
    present: np.ndarray  # (R,) bool


def _side(stats: np.ndarray, observed: np.ndarray) -> _Side:
    """Per-record means and the pooled variance of `stats` ``(M, R, D)`` over the models where `observed` ``(M, R)``."""
    w = observed.astype(np.float64)
    n = w.sum(axis=0)  # (R,)
    present = n > 0
    total = np.einsum("mr,mrd->rd", w, stats)
    mean = np.where(present[:, None], total / np.maximum(n, 1.0)[:, None], np.nan)
    dev = np.einsum("mr,mrd->rd", w, (stats - np.nan_to_num(mean)[None]) ** 2)
    dof = float(np.sum(np.maximum(n - 1.0, 0.0)))
    if dof > 0:
        var = dev.sum(axis=0) / dof
    elif present.any():  # one observation per record: the spread between records is all there is
        var = np.var(mean[present], axis=0)
    else:
        var = np.full(stats.shape[2], np.nan)
    return _Side(mean, np.maximum(var, VAR_FLOOR_ABS), present)


@dataclass(frozen=True)
class ULira:
    """Per-record Gaussians of the unlearned and the retrained reference models (module doc)."""

    mean_unlearned: np.ndarray  # (R, D)
    var_unlearned: np.ndarray  # (D,)
    mean_retrained: np.ndarray  # (R, D)
    var_retrained: np.ndarray  # (D,)
    n_unlearned: np.ndarray  # (R,) observations per record
    n_retrained: np.ndarray  # (R,)

    def score(self, stat: np.ndarray) -> np.ndarray:
        """``(R,)`` log likelihood ratio unlearned vs retrained of one model's statistic ``(R, D)``."""
        s = np.asarray(stat, dtype=np.float64)
        if s.shape != self.mean_unlearned.shape:
            raise ValueError(f"A statistic of shape {s.shape}; U-LiRA was fitted on {self.mean_unlearned.shape}.")
        return np.sum(
            _log_normal(s, self.mean_unlearned, self.var_unlearned)
            - _log_normal(s, self.mean_retrained, self.var_retrained),
            axis=1,
        )


def _log_normal(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)


def fit(
    unlearned: np.ndarray, unlearned_observed: np.ndarray, retrained: np.ndarray, retrained_observed: np.ndarray
) -> ULira:
    """U-LiRA's Gaussians from the reference models' statistics.

    Args:
        unlearned: ``(M, R, D)`` statistic of M unlearned reference models on the R audited records.
        unlearned_observed: ``(M, R)``: model m trained on record r before unlearning it.
        retrained: ``(N, R, D)`` statistic of N reference models trained without the request.
        retrained_observed: ``(N, R)``: model n never trained on record r.

    Raises:
        ValueError: If a side has no observation of any record, or the shapes disagree.
    """
    for name, stats, seen in (
        ("unlearned", unlearned, unlearned_observed),
        ("retrained", retrained, retrained_observed),
    ):
        if stats.ndim != 3 or seen.shape != stats.shape[:2]:
            raise ValueError(f"U-LiRA: {name} statistics {stats.shape} and observed {seen.shape} disagree.")
        if not seen.any():
            raise ValueError(f"U-LiRA: no {name} reference model observes any audited record.")
    if unlearned.shape[1:] != retrained.shape[1:]:
        raise ValueError(f"U-LiRA: the sides see different records ({unlearned.shape[1:]} vs {retrained.shape[1:]}).")
    u, r = _side(unlearned, unlearned_observed), _side(retrained, retrained_observed)
    both = u.present & r.present
    shift = np.mean(u.mean[both] - r.mean[both], axis=0) if both.any() else np.zeros(u.var.shape)
    mean_u = np.where(u.present[:, None], u.mean, r.mean + shift)
    mean_r = np.where(r.present[:, None], r.mean, u.mean - shift)
    return ULira(
        mean_u,
        u.var,
        mean_r,
        r.var,
        unlearned_observed.sum(axis=0).astype(np.int64),
        retrained_observed.sum(axis=0).astype(np.int64),
    )


def null_scores(
    unlearned: np.ndarray, unlearned_observed: np.ndarray, retrained: np.ndarray, retrained_observed: np.ndarray
) -> np.ndarray:
    """``(N, R)`` score of each retrained reference model by the Gaussians fitted without it (leave one out).

    NaN where the model does not observe the record. The arguments are `fit`'s. These are the
    null: what a retrained model scores.
    """
    out = np.full(retrained_observed.shape, np.nan)
    for j in range(retrained.shape[0]):
        others = retrained_observed.copy()
        others[j] = False
        if not others.any():
            continue
        held_out = fit(unlearned, unlearned_observed, retrained, others).score(retrained[j])
        out[j] = np.where(retrained_observed[j], held_out, np.nan)
    return out


def null_spread(null: np.ndarray) -> float:
    """How far one retrained model's AUC falls from 0.5 by its own draw: the SD of each null model's AUC.

    Each retrained reference model's scores (a row of `null_scores`) against the other models'
    scores; the standard deviation (ddof 1) of those AUCs. NaN with fewer than two such models.
    """
    values = []
    for j in range(null.shape[0]):
        mine, rest = null[j][np.isfinite(null[j])], np.delete(null, j, axis=0)
        rest = rest[np.isfinite(rest)]
        if len(mine) and len(rest):
            values.append(
                metrics.roc_auc(np.r_[np.ones(len(mine), bool), np.zeros(len(rest), bool)], np.r_[mine, rest])
            )
    return float(np.std(values, ddof=1)) if len(values) >= 2 else float("nan")


def auc(audited: np.ndarray, null: np.ndarray, *, seed: int, spread: float = 0.0) -> tuple[float, float, float]:
    """U-LiRA AUC of an audited model's scores against the null scores (`null_scores`), with its 95% CI.

    The CI adds the records' bootstrap error and `spread` (`null_spread`: one model's own draw, which
    resampling the records of that one model cannot see): ``AUC ± 1.96 sqrt(se_boot^2 + spread^2)``,
    ``se_boot`` from the stratified bootstrap's 95% interval, clipped to [0, 1].

    Returns:
        ``(auc, ci_low, ci_high)``: positives are the audited model's records, negatives the finite null scores.
    """
    a, c = np.asarray(audited, dtype=np.float64).ravel(), np.asarray(null, dtype=np.float64).ravel()
    c = c[np.isfinite(c)]
    y = np.r_[np.ones(len(a), bool), np.zeros(len(c), bool)]
    s = np.r_[a, c]
    value = metrics.roc_auc(y, s)
    lo, hi = metrics.bootstrap_ci(y, s, seed=seed)
    extra = 0.0 if np.isnan(spread) else spread
    half = metrics.Z95 * float(np.hypot((hi - lo) / (2 * metrics.Z95), extra))
    return value, max(value - half, 0.0), min(value + half, 1.0)


def _stat(
    outputs: pd.DataFrame, splits: pd.DataFrame, rows: np.ndarray, classes: Sequence[int], threat_model: ThreatModel
) -> np.ndarray:
    """LiRA's statistic of one model's `outputs` on the split's rows `rows` (bool mask, split order).

    Raises:
        ArtifactError: If the outputs do not cover the split's records in its order.
    """
    ordered = _in_split_order(outputs, splits["sample_id"].to_numpy(), str(outputs["model_id"].iloc[0]))
    return lira_statistic(Observations.from_outputs(ordered, classes, threat_model))[rows]


def audit(
    splits: pd.DataFrame,
    request: str,
    reference: Mapping[str, pd.DataFrame],
    unlearned: Mapping[str, Mapping[str, pd.DataFrame]],
    retrained: Mapping[str, pd.DataFrame],
    audited: Mapping[str, pd.DataFrame],
    *,
    config: AttackConfig,
    classes: Sequence[int],
    seed: int,
) -> Output:
    """U-LiRA of every audited model's forget set (module doc): the ``ulira`` stage.

    Args:
        splits: The split table (record order, roles, the request's ``is_forget``).
        request: ``class`` or ``samples`` (the split's facts).
        reference: ``{ref-<i>: outputs}`` of the reference models U-LiRA uses.
        unlearned: ``{method: {ref-<i>: outputs}}``: each of them after the method, with its own request.
        retrained: ``{ref-<i>: outputs}`` of each retrained without its request (a class request); empty
            for a sample request, whose retrained side is the reference models that never drew the record.
        audited: ``{phase: outputs}`` of the models to score (before, oracle, after_<method>, per repeat).
            The no-op and the oracle are scored by the fit of the reference models as trained.
        config: The attack section (its threat model).
        classes: The model's class labels, in output order.
        seed: Root seed (the reference models' halves; the bootstrap's).

    Returns:
        One row per scored (model, forget record): ``fit`` (the method whose unlearned reference models
        the Gaussians came from, ``none`` for the models as trained), ``phase`` (the audited model's, or
        ``null`` for a retrained reference model's leave-one-out score), ``model_id``, ``sample_id``,
        ``score``; and `ULiraFacts` with each phase's AUC and 95% CI.
    """
    rows = (splits["role"] == "target_train").to_numpy() & request_rows(splits, request)
    ids = splits["sample_id"].to_numpy()[rows]
    names = list(reference)
    tm = config.threat_model
    members = np.stack([member_mask(splits, n, seed=seed)[rows] for n in names])

    def stack(tables: Mapping[str, pd.DataFrame]) -> np.ndarray:
        return np.stack([_stat(tables[n], splits, rows, classes, tm) for n in names])

    trained = stack(reference)
    null_models = retrained or reference  # whose leave-one-out scores form the null
    retrained_side = (stack(retrained), np.ones_like(members)) if retrained else (trained, ~members)
    sides = {"none": (trained, members)} | {m: (stack(t), members) for m, t in unlearned.items()}
    model_ids = np.asarray([str(null_models[n]["model_id"].iloc[0]) for n in names], dtype=object)
    parts, aucs, spreads = [], {}, {}
    for name, side in sides.items():
        fitted, null = fit(*side, *retrained_side), null_scores(*side, *retrained_side)
        spreads[name] = null_spread(null)
        seen = np.isfinite(null)
        parts.append(
            pd.DataFrame(
                {"fit": name, "phase": "null", "model_id": np.broadcast_to(model_ids[:, None], null.shape)[seen]}
                | {"sample_id": np.broadcast_to(ids, null.shape)[seen], "score": null[seen]}
            )
        )
        for phase, outputs in audited.items():
            which = Which.of_phase(phase)
            if which is None or (which.method or "none") != name:
                continue
            score = fitted.score(_stat(outputs, splits, rows, classes, tm))
            aucs[phase] = list(auc(score, null, seed=derive_seed(seed, "ulira", phase), spread=spreads[name]))
            model_id = str(outputs["model_id"].iloc[0])
            parts.append(
                pd.DataFrame({"fit": name, "phase": phase, "model_id": model_id, "sample_id": ids, "score": score})
            )
    facts = ULiraFacts(
        n_records=int(rows.sum()),
        n_reference=len(names),
        retrained_side="retrained reference models" if retrained else "reference models without the record",
        unlearned_per_record=float(members.sum(axis=0).mean()) if len(names) else 0.0,
        auc={p: aucs[p] for p in audited if p in aucs},
        null_spread={k: round(v, 6) for k, v in spreads.items()},
    )
    return Output(pd.concat(parts, ignore_index=True), facts)


def audit_artifacts(
    splits: ArtifactRef,
    reference: Mapping[str, ArtifactRef],
    unlearned: Mapping[str, Mapping[str, ArtifactRef]],
    retrained: Mapping[str, ArtifactRef],
    audited: Mapping[str, ArtifactRef],
    *,
    config: AttackConfig,
    classes: Sequence[int],
    seed: int,
) -> Output:
    """`audit` on stored artifacts (the ``ulira`` stage): every argument an artifact ref, as `audit` takes tables."""
    table = read_splits(splits)
    return audit(
        table.frame,
        table.facts.request,
        {n: artifacts.read(r) for n, r in reference.items()},
        {m: {n: artifacts.read(r) for n, r in refs.items()} for m, refs in unlearned.items()},
        {n: artifacts.read(r) for n, r in retrained.items()},
        {p: artifacts.read(r) for p, r in audited.items()},
        config=config,
        classes=classes,
        seed=seed,
    )
