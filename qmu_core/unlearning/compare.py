"""Every unlearning method against the oracle, per repeat (the `comparison` stage), and the means over repeats.

Pure pandas/NumPy: no TensorFlow.

Rows are named by method: ``noop`` (the model before unlearning), each of
``unlearn.methods``, and ``retrain`` (the oracle). Metrics per row:

* accuracies: ``retain_train_acc``, ``retain_test_acc``, ``forget_train_acc``,
  ``forget_test_acc`` (forget-class test records; NaN for a sample request);
* every attack of the audit on the forget set: ``<attack>:forget_success`` (forget-set members
  called member), ``<attack>:forget_control`` (the same rate on the non-member control),
  ``<attack>:forget_auc`` (members vs control), and the headline attack's as ``mia_*``;
* ``ulira_auc``: U-LiRA's AUC against a retrained control (`qmu_core.attacks.ulira`), with
  ``attack.ulira_models > 0``;
* ``js_to_oracle``: mean Jensen-Shannon divergence (base 2, in [0, 1]) between the method's and
  the oracle's class probabilities on the forget-set training records;
* cost: ``wall_s`` (unlearning, or the oracle's training), ``circuit_evals``, and
  ``relearn_steps`` (`qmu_core.unlearning.relearn`; NaN if not regained within the limit);
* ``reached_stop`` (1 or 0) and ``passes``.

Each row carries the oracle's value of the same repeat and the gap ``value - oracle``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.identity import Which, lineup
from qmu_core.metrics import Z95
from qmu_core.provenance import AuditFacts, ModelFacts, RelearnFacts, ULiraFacts

__all__ = [
    "ACCURACIES",
    "COST",
    "TOLERANCE",
    "Repeat",
    "Z95",
    "aggregate",
    "combined_half_width",
    "compare_artifacts",
    "compare_methods",
    "js_divergence",
    "verdict",
    "within",
]

ACCURACIES = ("retain_train_acc", "retain_test_acc", "forget_train_acc", "forget_test_acc")
COST = ("wall_s", "circuit_evals", "relearn_steps")
FORGET_ATTACK_METRICS = ("forget_success", "forget_control", "forget_auc")
HEADLINE = ("mia_forget_success", "mia_forget_control", "mia_forget_auc")


TOLERANCE = {
    "retain_train_acc": 0.05,
    "retain_test_acc": 0.05,
    "forget_train_acc": 0.05,
    "forget_test_acc": 0.05,
    "forget_success": 0.05,
    "forget_auc": 0.05,
    "js_to_oracle": 0.05,
    "ulira_auc": 0.05,
}
"""A method matches the oracle on a metric when |value - oracle| is at most this (for an
attack's metric, the entry of its suffix). The same numbers are stated in every report."""


def tolerance(metric: str) -> float | None:
    """The tolerance of `metric` (`TOLERANCE`), None for metrics without a verdict (cost)."""
    return TOLERANCE.get(metric.split(":")[-1].removeprefix("mia_"))


def within(metric: str, gap: float) -> bool | None:
    """Whether `gap` to the oracle is within `metric`'s tolerance; None if no verdict applies."""
    tol = tolerance(metric)
    if tol is None or gap is None or math.isnan(gap):
        return None
    return abs(gap) <= tol + 1e-12


def verdict(metric: str, gap: float | None, lo: float | None = None, hi: float | None = None) -> str | None:
    """``within``, ``outside`` or ``inconclusive`` tolerance of the oracle; None if no verdict applies.

    With a 95% CI ``[lo, hi]`` of the gap (two or more repeats): ``within`` when the whole CI is
    inside ``±tolerance``, ``outside`` when the whole CI is beyond it, else ``inconclusive`` (the
    run cannot tell). Without a CI (one repeat), the point gap decides, as `within` does.
    """
    tol = tolerance(metric)
    if tol is None or gap is None or math.isnan(gap):
        return None
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "within" if abs(gap) <= tol + 1e-12 else "outside"
    if -tol - 1e-12 <= lo and hi <= tol + 1e-12:
        return "within"
    if lo > tol + 1e-12 or hi < -tol - 1e-12:
        return "outside"
    return "inconclusive"


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per row of two probability tables, base 2 (in [0, 1])."""
    p = np.clip(np.asarray(p, np.float64), 0, None)
    q = np.clip(np.asarray(q, np.float64), 0, None)
    p, q = p / p.sum(axis=1, keepdims=True), q / q.sum(axis=1, keepdims=True)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(a / b), 0.0)
        return terms.sum(axis=1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


@dataclass(frozen=True)
class Repeat:
    """One repeat's models, by row name (`Which.row`: ``noop``, methods, ``retrain``): outputs and facts."""

    outputs: Mapping[str, pd.DataFrame]
    facts: Mapping[str, ModelFacts]
    relearn: Mapping[str, RelearnFacts]


def _forget_probs(outputs: pd.DataFrame) -> pd.Series:
    rows = outputs[(outputs["role"] == "target_train") & outputs["is_forget"]]
    return rows.set_index("sample_id")["prob"]


def compare_methods(
    metrics: pd.DataFrame,
    repeats: Sequence[Repeat],
    *,
    methods: Sequence[str],
    attacks: Sequence[str],
    ulira: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """The `comparison` table (module doc): one row per (repeat, method, metric).

    Args:
        metrics: The run's `metrics` table (model-level rows have ``attack == ""``).
        repeats: Per repeat, the models' outputs and facts by row name.
        methods: The unlearning methods; the rows are `identity.lineup` (before, methods, oracle).
        attacks: The audit's attacks, in report order.
        ulira: Per phase, U-LiRA's ``[AUC, CI low, CI high]`` (`qmu_core.provenance.ULiraFacts`), if it ran.
    """
    values = {
        (str(p), str(a), str(m)): float(v)
        for p, a, m, v in metrics[["phase", "attack", "metric", "value"]].itertuples(index=False)
    }
    for phase, (auc, lo, hi) in (ulira or {}).items():
        values |= {(phase, "", "ulira_auc"): auc, (phase, "", "ulira_auc_ci_low"): lo}
        values[(phase, "", "ulira_auc_ci_high")] = hi
    rows: list[dict[str, object]] = []
    errors: dict[str, dict[str, float]] = {}
    for k, rep in enumerate(repeats):
        oracle_probs = _forget_probs(rep.outputs[Which.oracle().row])
        table: dict[str, dict[str, float]] = {}
        for which in lineup(methods, k):
            name, phase, trained = which.row, which.phase, which.role != "before"
            got: dict[str, float] = {m: values.get((phase, "", m), math.nan) for m in (*ACCURACIES, *HEADLINE)}
            for attack in attacks:
                for m in FORGET_ATTACK_METRICS:
                    got[f"{attack}:{m}"] = values.get((phase, attack, m), math.nan)
            probs = _forget_probs(rep.outputs[name]).reindex(oracle_probs.index)
            if ulira:
                got["ulira_auc"] = values.get((phase, "", "ulira_auc"), math.nan)
            got["js_to_oracle"] = float(np.mean(js_divergence(np.stack(list(probs)), np.stack(list(oracle_probs)))))
            facts = rep.facts.get(name)
            relearn = rep.relearn.get(name)
            got["wall_s"] = _num(facts.wall_s if facts else None) if trained else 0.0
            got["circuit_evals"] = _num(facts.circuit_evals if facts else None) if trained else 0.0
            got["relearn_steps"] = _num(relearn.steps if relearn else None) if trained else 0.0
            if facts is not None and facts.reached_stop is not None:
                got["reached_stop"] = float(facts.reached_stop)
                got["passes"] = float(facts.passes or 0)
            table[name] = got
            errors[name] = {m: _record_se(values, phase, m) for m in got}
        oracle, oracle_se = table[Which.oracle().row], errors[Which.oracle().row]
        for name, got in table.items():
            for metric, value in got.items():
                ref = oracle.get(metric, math.nan)
                rows.append(
                    {
                        "repeat": k,
                        "method": name,
                        "metric": metric,
                        "value": value,
                        "oracle": ref,
                        "gap": value - ref,
                        "value_se": errors[name][metric],
                        "oracle_se": oracle_se.get(metric, math.nan),
                    }
                )
    return pd.DataFrame(rows, columns=["repeat", "method", "metric", "value", "oracle", "gap", "value_se", "oracle_se"])


def _record_se(values: Mapping[tuple[str, str, str], float], phase: str, metric: str) -> float:
    """The record-level standard error of `metric` from its bootstrap 95% CI in the metrics table; NaN if none.

    ``SE = (high - low) / (2 * Z95)``. An attack's metric is ``<attack>:<name>``.
    """
    attack, _, name = metric.rpartition(":")
    lo = values.get((phase, attack, f"{name}_ci_low"), math.nan)
    hi = values.get((phase, attack, f"{name}_ci_high"), math.nan)
    return (hi - lo) / (2 * Z95) if not (math.isnan(lo) or math.isnan(hi)) else math.nan


def _num(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def combined_half_width(values: np.ndarray, record_se: np.ndarray) -> float:
    """Half-width of the 95% CI of the mean over seeds, with the records' sampling error added.

    ``k`` repeats (training seeds) on the same records: the seeds' spread gives ``a = s^2 / k``;
    the records are shared by every repeat, so their sampling error does not shrink with ``k``
    and adds the mean bootstrap variance ``b = mean(se^2)``. Half-width: ``t_{nu, .975} *
    sqrt(a + b)`` for ``k >= 2``, where ``nu = (a + b)^2 (k - 1) / a^2`` is Welch and
    Satterthwaite's degrees of freedom: ``b`` comes from thousands of bootstrap resamples, so
    only ``a`` is uncertain, and ``nu`` runs from ``k - 1`` (the seeds' spread dominates) to
    infinity (the records' error does). With one repeat, ``1.96 * se`` (the bootstrap alone).
    NaN when neither is known. Repeats without a record-level error (the accuracies) count 0.
    """
    k = len(values)
    known = record_se[~np.isnan(record_se)]
    records = float(np.mean(known**2)) if len(known) else 0.0
    if k >= 2:
        seeds = float(values.var(ddof=1) / k)
        total = seeds + records
        if seeds == 0.0:
            return Z95 * math.sqrt(total)
        dof = total**2 * (k - 1) / seeds**2
        return float(stats.t.ppf(0.975, dof) * math.sqrt(total))
    if k == 1 and len(known):
        return Z95 * math.sqrt(records)
    return math.nan


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Means over repeats with 95% CIs over seeds and records (`combined_half_width`), per (method, metric).

    Columns: ``method``, ``metric``, ``n`` (repeats with a value), ``mean``, ``ci_low``,
    ``ci_high``, ``oracle`` (mean), ``gap`` (mean of the per-repeat gaps), ``gap_ci_low``,
    ``gap_ci_high``. The gap's record-level error takes the method's and the oracle's as
    independent (``sqrt(se_m^2 + se_o^2)``: conservative, as both are measured on the same
    records); the oracle's own gap is exactly 0. Without any error estimate the CIs are NaN. A
    judged metric's CI is clipped to [0, 1] (its gap's to [-1, 1]): the mean ± half-width of a
    bounded metric can cross its bound, the metric cannot.
    """
    if "value_se" not in table.columns:  # a comparison artifact from before v2
        table = table.assign(value_se=math.nan, oracle_se=math.nan)
    out = []
    oracle_row = Which.oracle().row
    for (method, metric), part in table.groupby(["method", "metric"], sort=False):
        row: dict[str, object] = {"method": method, "metric": metric}
        value_se = part["value_se"].to_numpy(dtype=np.float64)
        gap_se = np.sqrt(value_se**2 + part["oracle_se"].to_numpy(dtype=np.float64) ** 2)
        if method == oracle_row:
            gap_se = np.zeros_like(gap_se)
        for col, prefix, se in (("value", "", value_se), ("gap", "gap_", gap_se)):
            v = part[col].to_numpy(dtype=np.float64)
            keep = ~np.isnan(v)
            v, se = v[keep], se[keep]
            mean = float(v.mean()) if len(v) else math.nan
            half = combined_half_width(v, se) if len(v) else math.nan
            key = "mean" if col == "value" else "gap"
            row[key] = mean
            # a judged metric lies in [0, 1] (accuracies, rates, AUCs, JS), so its gap in [-1, 1]
            bound = (
                (0.0 if col == "value" else -1.0, 1.0) if tolerance(str(metric)) is not None else (-math.inf, math.inf)
            )
            row[f"{prefix}ci_low"], row[f"{prefix}ci_high"] = max(mean - half, bound[0]), min(mean + half, bound[1])
            if col == "value":
                row["n"] = len(v)
        o = part["oracle"].to_numpy(dtype=np.float64)
        o = o[~np.isnan(o)]
        row["oracle"] = float(o.mean()) if len(o) else math.nan
        out.append(row)
    return pd.DataFrame(out)


def compare_artifacts(
    metrics: ArtifactRef,
    scores: ArtifactRef,
    outputs: Mapping[str, ArtifactRef],
    models: Mapping[str, ArtifactRef],
    relearned: Mapping[str, ArtifactRef],
    *,
    methods: Sequence[str],
    repeats: int,
    ulira: ArtifactRef | None = None,
) -> Output:
    """`compare_methods` on a run's artifacts (the `comparison` stage): refs by audit phase."""
    audit = artifacts.read_facts(scores, AuditFacts)
    runs = []
    for k in range(repeats):
        names = {which.row: which.phase for which in lineup(methods, k)}
        runs.append(
            Repeat(
                outputs={n: artifacts.read(outputs[p]) for n, p in names.items()},
                facts={n: artifacts.read_facts(models[p], ModelFacts) for n, p in names.items()},
                relearn={
                    n: artifacts.read_facts(relearned[p], RelearnFacts) for n, p in names.items() if p in relearned
                },
            )
        )
    aucs = artifacts.read_facts(ulira, ULiraFacts).auc if ulira is not None else None
    return Output(
        compare_methods(artifacts.read(metrics), runs, methods=methods, attacks=tuple(audit.thresholds), ulira=aucs)
    )
