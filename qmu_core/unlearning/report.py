"""The deletion report.

What was deleted, every method against the oracle, a verdict per method and metric, a bar
chart, and (sample requests) each deleted record's membership score.

Pure pandas/matplotlib; reads the `comparison` table (`qmu_core.unlearning.compare`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qmu_core.artifacts import atomic_path
from qmu_core.config import METHODS
from qmu_core.unlearning.compare import ACCURACIES, FORGET_ATTACK_METRICS, TOLERANCE, aggregate, verdict, within

__all__ = [
    "Deletion",
    "deletion_markdown",
    "deletion_plot",
    "deletion_summary",
    "record_scores",
]

FIXED_ROWS = {"noop": "no-op (before)", "retrain": "retrain (oracle)"}
"""The comparison's two rows that are no method (`qmu_core.identity.Which.row`)."""


def row_label(row: str) -> str:
    """A comparison row's label in tables and plots: the fixed rows', else the method's catalogue label."""
    return FIXED_ROWS.get(row) or METHODS.label(row)


# The table of item 3: metric -> column title.
MAIN_COLUMNS = {
    "retain_train_acc": "retain train acc",
    "retain_test_acc": "retain test acc",
    "forget_train_acc": "forget train acc",
    "forget_test_acc": "forget test acc",
    "mia_forget_success": "forget success",
    "mia_forget_control": "forget control",
    "mia_forget_auc": "forget AUC",
    "ulira_auc": "U-LiRA AUC",
    "js_to_oracle": "JS to oracle",
    "relearn_steps": "relearn steps",
    "wall_s": "wall s",
    "circuit_evals": "circuit evals",
}
VERDICT_METRICS = (*ACCURACIES, "mia_forget_success", "mia_forget_auc", "ulira_auc", "js_to_oracle")
VERDICT_MARKS = {"within": "✓", "outside": "✗", "inconclusive": "?"}
"""How deletion.md marks a verdict (`qmu_core.unlearning.compare.verdict`)."""
PLOTTED = ("retain_test_acc", "forget_train_acc", "forget_test_acc", "mia_forget_success", "mia_forget_auc")


@dataclass(frozen=True)
class Deletion:
    """The request: kind, size, the hash of its ids, and (class requests) the class."""

    kind: str
    count: int
    sha256: str
    forget_class: int | None
    sample_ids: tuple[int, ...] = ()

    def describe(self) -> str:
        """One log line: what was requested and how many target training records, with their SHA-256."""
        what = f"class {self.forget_class}" if self.kind == "class" else f"{self.count} records by sample_id"
        return f"{what}: {self.count} target training records (SHA-256 of the sorted ids {self.sha256[:16]}…)"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _cell(row: Mapping[str, Any], metric: str) -> str:
    digits = 1 if metric == "wall_s" else 0 if metric in ("circuit_evals", "relearn_steps") else 3
    text = _fmt(row.get("mean"), digits)
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if lo is not None and not math.isnan(lo):
        text += f" ±{(hi - lo) / 2:.{max(digits, 1) if digits else 0}f}"
    if metric == "relearn_steps" and row.get("n", 1) == 0:
        return "> max"
    return text


def deletion_summary(
    comparison: pd.DataFrame, deletion: Deletion, *, not_reached: Sequence[str], headline: str
) -> dict[str, Any]:
    """summary.json's ``deletion`` section.

    The request, the tolerances, and per method and metric the mean over repeats, its 95%
    CI, the oracle's mean, the gap and the verdict.
    """
    agg = aggregate(comparison)
    methods: dict[str, dict[str, Any]] = {}
    for row in agg.to_dict("records"):
        gap = row["gap"]
        entry = {
            "mean": _json(row["mean"]),
            "ci": [_json(row["ci_low"]), _json(row["ci_high"])],
            "oracle": _json(row["oracle"]),
            "gap": _json(gap),
            "gap_ci": [_json(row["gap_ci_low"]), _json(row["gap_ci_high"])],
            "within_tolerance": within(str(row["metric"]), gap),
            "verdict": verdict(str(row["metric"]), gap, row["gap_ci_low"], row["gap_ci_high"]),
        }
        methods.setdefault(str(row["method"]), {})[str(row["metric"])] = entry
    return {
        "request": {
            "kind": deletion.kind,
            "count": deletion.count,
            "sha256": deletion.sha256,
            "forget_class": deletion.forget_class,
            "sample_ids": list(deletion.sample_ids),
        },
        "repeats": int(comparison["repeat"].nunique()),
        "headline_attack": headline,
        "tolerance": TOLERANCE,
        "did_not_reach_stop": list(not_reached),
        "methods": methods,
    }


def _json(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _reached(mean: float) -> str:
    return "yes" if mean == 1 else "**no**" if mean == 0 else f"{mean:.0%} of repeats"


def _by(agg: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    return {(str(r["method"]), str(r["metric"])): {str(k): v for k, v in r.items()} for r in agg.to_dict("records")}


def deletion_markdown(
    comparison: pd.DataFrame,
    deletion: Deletion,
    *,
    headline: str,
    attacks: Sequence[str],
    not_reached: Mapping[str, str],
    stop_rule: str,
    records: pd.DataFrame | None = None,
    plot_name: str = "deletion.png",
) -> str:
    """The deletion report (module doc) as Markdown."""
    agg = aggregate(comparison)
    cells = _by(agg)
    methods = list(dict.fromkeys(comparison["method"]))
    repeats = int(comparison["repeat"].nunique())
    shown = [k for k in MAIN_COLUMNS if k != "ulira_auc" or any(key[1] == k for key in cells)]
    judged = [k for k in VERDICT_METRICS if k in shown]
    mean_note = f"means over {repeats} repeats ± the 95% CI half-width" if repeats > 1 else "one repeat"
    lines = [
        "# Deletion report",
        "",
        f"- **Deleted**: {deletion.describe()}.",
        f"- **Full SHA-256** of the sorted, comma-joined sample_ids: `{deletion.sha256}`.",
        f"- **Stopping rule** (fixed before any method ran): {stop_rule}",
        f"- **Standard**: the oracle, retrained from scratch without the deleted records; numbers are {mean_note}.",
        f"- Attack columns: the **{headline}** attack (`attack.headline`); every attack is in the last table.",
        *(
            [
                "- **U-LiRA AUC** (Hayes et al.): can an attacker with reference models put through the same method "
                "tell this model from one retrained without the records? 0.5: no; 1: on every record. The no-op and "
                "the oracle are scored with the models that unlearned nothing (docs/methods.md#u-lira)."
            ]
            if "ulira_auc" in shown
            else []
        ),
        "",
        "## Every method against the oracle",
        "",
        "| method | " + " | ".join(MAIN_COLUMNS[k] for k in shown) + " | reached stop |",
        "|---|" + "---:|" * (len(shown) + 1),
    ]
    for m in methods:
        reached = cells.get((m, "reached_stop"))
        flag = "–" if reached is None else _reached(reached["mean"])
        row = [_cell(cells.get((m, k), {}), k) for k in shown]
        lines.append(f"| {row_label(m)} | " + " | ".join(row) + f" | {flag} |")
    tol = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in TOLERANCE.items())
    lines += [
        "",
        "## Gap to the oracle and verdict",
        "",
        "Gap = method − oracle (mean over repeats, ± half its 95% CI over seeds and records: "
        "docs/methods.md#judged-against-the-oracle). ✓ within tolerance, ✗ not, ? inconclusive (the gap's CI "
        "straddles the tolerance: this run cannot tell; more seeds or records narrow it). Without a CI (one "
        f"repeat, a metric without a record-level error) the point gap decides. Tolerances (absolute): {tol}.",
        "",
        "| method | " + " | ".join(MAIN_COLUMNS[k] for k in judged) + " | verdict |",
        "|---|" + "---:|" * (len(judged) + 1),
    ]
    for m in methods:
        if m == "retrain":
            continue
        row, said = [], []
        for k in judged:
            c = cells.get((m, k))
            v = verdict(k, c["gap"], c.get("gap_ci_low"), c.get("gap_ci_high")) if c is not None else None
            if v is None or c is None:
                row.append("n/a")
                continue
            said.append(v)
            half = (c["gap_ci_high"] - c["gap_ci_low"]) / 2
            width = "" if math.isnan(half) else f" ±{half:.3f}"
            row.append(f"{c['gap']:+.3f}{width} {VERDICT_MARKS[v]}")
        unsure = said.count("inconclusive")
        tail = f"{said.count('within')}/{len(said)} within" + (f", {unsure} inconclusive" if unsure else "")
        lines.append(f"| {row_label(m)} | " + " | ".join(row) + f" | {tail} |")
    if not_reached:
        lines += ["", "## Methods that did not reach their stopping rule", ""]
        lines += [f"- **{row_label(m)}**: {why}" for m, why in not_reached.items()]
    lines += [
        "",
        "## Every attack on the forget set",
        "",
        "Forget success: share of deleted training records called member; control: the same rate on never-trained "
        "records of the same classes; forget AUC separates the two (0.5: indistinguishable).",
        "",
        "| method | " + " | ".join(f"{a} success / control / AUC" for a in attacks) + " |",
        "|---|" + "---:|" * len(attacks),
    ]
    for m in methods:
        row = []
        for a in attacks:
            parts = [_fmt(cells.get((m, f"{a}:{k}"), {}).get("mean")) for k in FORGET_ATTACK_METRICS]
            row.append(" / ".join(parts))
        lines.append(f"| {row_label(m)} | " + " | ".join(row) + " |")
    if records is not None and len(records):
        cols = [c for c in records.columns if c not in ("sample_id", "label")]
        lines += [
            "",
            f"## Deleted records: {headline} membership score per model (repeat 0)",
            "",
            "Higher means more member-like; the attack's threshold is in report.md.",
            "",
            "| sample_id | label | " + " | ".join(cols) + " |",
            "|---:|---:|" + "---:|" * len(cols),
        ]
        for r in records.to_dict("records"):
            lines.append(f"| {r['sample_id']} | {r['label']} | " + " | ".join(_fmt(float(r[c])) for c in cols) + " |")
    lines += ["", f"![before / after / oracle per method]({plot_name})", ""]
    return "\n".join(lines)


def record_scores(
    scores: pd.DataFrame, *, headline: str, phases: Mapping[str, str], sample_ids: Sequence[int]
) -> pd.DataFrame:
    """Per deleted record, the headline attack's score under every model of repeat 0.

    Args:
        scores: The `mia_scores` table.
        headline: The attack whose scores are taken.
        phases: Column name -> phase (e.g. ``{"before": "before", "ga": "after_ga", "oracle": "oracle"}``).
        sample_ids: The deleted records.
    """
    mine = scores[
        (scores["attack"] == headline) & scores["sample_id"].isin(list(sample_ids)) & (scores["role"] == "target_train")
    ]
    out = pd.DataFrame({"sample_id": sorted(int(i) for i in sample_ids)})
    for col, phase in phases.items():
        part = mine[mine["phase"] == phase].set_index("sample_id")["score"]
        out[col] = out["sample_id"].map(part)
    return out


def deletion_plot(comparison: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Grouped bars: per metric, before (no-op), each method and the oracle.

    Means over repeats, 95% CI whiskers when there are repeats.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = _by(aggregate(comparison))
    methods = list(dict.fromkeys(comparison["method"]))
    fig, ax = plt.subplots(figsize=(11, 4.6), dpi=110)
    width = 0.84 / len(methods)
    for i, m in enumerate(methods):
        vals, errs = [], []
        for k in PLOTTED:
            c = cells.get((m, k), {})
            v = c.get("mean", math.nan)
            vals.append(0.0 if v is None or math.isnan(v) else v)
            lo, hi = c.get("ci_low", math.nan), c.get("ci_high", math.nan)
            errs.append(0.0 if lo is None or math.isnan(lo) else (hi - lo) / 2)
        xs = [j + i * width for j in range(len(PLOTTED))]
        # every plotted metric is a fraction: whiskers stop at 0 and 1
        yerr = [
            [min(e, v) for v, e in zip(vals, errs, strict=True)],
            [min(e, 1 - v) for v, e in zip(vals, errs, strict=True)],
        ]
        bars = ax.bar(xs, vals, width, yerr=yerr if any(errs) else None, label=row_label(m), capsize=2)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(PLOTTED))])
    ax.set_xticklabels([MAIN_COLUMNS[k] for k in PLOTTED], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", ncol=len(methods), fontsize=7, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
