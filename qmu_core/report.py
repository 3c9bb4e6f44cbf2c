"""Before / after / oracle comparison: metrics table, summary, Markdown and a plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qmu_core import metrics
from qmu_core.artifacts import ArtifactRef, Output, atomic_path, companion, read_metadata
from qmu_core.config import QMUConfig
from qmu_core.membership import shadow_warnings
from qmu_core.provenance import ModelFacts

__all__ = [
    "HEADLINE",
    "LABELS",
    "Report",
    "compare",
    "markdown",
    "models_summary",
    "notes",
    "plot",
    "publish",
    "run_warnings",
    "table_rows",
    "title",
    "write_summary",
]

# The stable numbers scripts read from summary.json["models"][phase].
HEADLINE = ("retain_test_acc", "forget_test_acc", "mia_auc", "mia_forget_success")
# The plot adds the non-member control next to the forget success: leakage is their gap.
PLOTTED = (*HEADLINE, "mia_forget_control")

LABELS = {
    "retain_test_acc": "retain test acc",
    "forget_test_acc": "forget test acc",
    "retain_train_acc": "retain train acc",
    "forget_train_acc": "forget train acc",
    "mia_auc": "MIA AUC",
    "mia_balanced_acc": "MIA balanced acc",
    "mia_tpr_at_1pct_fpr": "MIA TPR @ 1% FPR",
    "mia_forget_success": "MIA forget success",
    "mia_forget_control": "MIA forget control (non-members)",
    "mia_auc_ci_low": "MIA AUC 95% CI low",
    "mia_auc_ci_high": "MIA AUC 95% CI high",
    "mia_tpr_at_0_1pct_fpr": "MIA TPR @ 0.1% FPR",
    "mia_forget_auc": "MIA forget AUC (forget set vs held-out forget class)",
    "mia_forget_auc_ci_low": "MIA forget AUC 95% CI low",
    "mia_forget_auc_ci_high": "MIA forget AUC 95% CI high",
    "gap_balanced_acc": "baseline (member = correct) balanced acc",
    "gap_auc": "baseline (member = correct) AUC",
}


def compare(outputs: Mapping[str, pd.DataFrame], scores: Mapping[str, pd.DataFrame], *, threshold: float) -> Output:
    """The `metrics` stage: a long table with one row per (phase, metric)."""
    rows = []
    for phase, out in outputs.items():
        values = (
            metrics.accuracy_metrics(out)
            | metrics.membership_metrics(scores[phase], threshold=threshold)
            | metrics.gap_metrics(out)
        )
        model_id = str(out["model_id"].iloc[0])
        rows += [{"model_id": model_id, "phase": phase, "metric": k, "value": float(v)} for k, v in values.items()]
    return Output(pd.DataFrame(rows))


def models_summary(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """``{phase: {metric: value}}`` with NaN as None (valid JSON)."""
    out: dict[str, dict[str, float | None]] = {}
    for phase, metric, raw in zip(table["phase"], table["metric"], table["value"], strict=True):
        value = None if math.isnan(float(raw)) else float(raw)
        out.setdefault(str(phase), {})[str(metric)] = value
    return out


def markdown(summary: Mapping[str, Mapping[str, float | None]], *, title: str, notes: list[str]) -> str:
    """A Markdown report: the comparison table and what it means."""
    phases = list(summary)
    lines = [f"# {title}", "", "| metric | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]
    for key, label in LABELS.items():
        cells = [summary[p].get(key) for p in phases]
        lines.append(f"| {label} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def plot(summary: Mapping[str, Mapping[str, float | None]], path: Path, *, title: str) -> Path:
    """Grouped bar chart of the headline numbers per phase (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = list(summary)
    fig, ax = plt.subplots(figsize=(9.5, 4.4), dpi=110)
    width = 0.8 / len(phases)
    for i, phase in enumerate(phases):
        vals = [summary[phase].get(k) or 0.0 for k in PLOTTED]
        bars = ax.bar([j + i * width for j in range(len(PLOTTED))], vals, width, label=phase)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    auc = PLOTTED.index("mia_auc")
    ax.hlines(0.5, auc - width, auc + width * len(phases), colors="grey", linestyles="dashed", label="chance (AUC)")
    ax.set_xticks([j + width * (len(phases) - 1) / 2 for j in range(len(PLOTTED))])
    ax.set_xticklabels([LABELS[k].replace(" (non-members)", "\n(non-members)") for k in PLOTTED], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def write_summary(path: Path, summary: Mapping[str, Any]) -> Path:
    """Write `summary` as JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
    return path


def run_warnings(config: QMUConfig, artifacts: Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]]) -> list[str]:
    """What was suspicious but allowed in this run: the config's and every artifact's warnings."""
    found = list(shadow_warnings(config.data, config.attack))
    for value in artifacts.values():
        for ref in [value] if isinstance(value, ArtifactRef) else value.values():
            found += read_metadata(ref).warnings
    return list(dict.fromkeys(found))


def title(config: QMUConfig) -> str:
    """The report's title line."""
    m, d = config.model, config.data
    return f"QMU {m.kind} ({m.encoding}) on {d.dataset}: forget class {d.forget_class}"


def notes(unlearned: ModelFacts) -> list[str]:
    """What the table's rows and columns mean (Markdown bullets)."""
    return [
        f"- **before**: the target model; **after_ga**: after gradient ascent on the forget set "
        f"({unlearned.passes} passes); **oracle**: retrained from scratch without the forget set.",
        "- *MIA forget success*: share of forget-set training records the attack calls member "
        "(the paper's headline). *MIA forget control*: the same call rate on held-out records of "
        "the forget class, which were never trained on.",
        "- MIA AUC compares all target members with target non-members.",
    ]


def table_rows(models: Mapping[str, Mapping[str, float | None]]) -> list[dict[str, Any]]:
    """The comparison as rows ``{metric, phase...}`` (for a UI table)."""
    return [{"metric": LABELS[k], **{p: models[p].get(k) for p in models}} for k in LABELS]


@dataclass(frozen=True)
class Report:
    """A published run report: where summary.json is, and the Markdown and table shown in the UI."""

    summary_path: Path
    markdown: str
    rows: list[dict[str, Any]]
    title: str


def publish(
    table: pd.DataFrame,
    *,
    run_name: str,
    root: Path,
    config: QMUConfig,
    unlearned: ModelFacts,
    artifacts: Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]],
    wall_time_s: float,
) -> Report:
    """Write ``<root>/runs/<run_name>/`` summary.json, report.md and comparison.png.

    Args:
        table: The `metrics` table.
        run_name: The run's name (directory name).
        root: The artifact root.
        config: The run's config (stored in the summary).
        unlearned: Facts of the unlearned model.
        artifacts: Every artifact of the run, by name; a mapping value groups several
            (``{"outputs": {"before": ref, ...}}``).
        wall_time_s: Seconds since the run started.
    """
    models = models_summary(table)
    run_dir = Path(root) / "runs" / run_name
    heading = title(config)
    cautions = run_warnings(config, artifacts)
    md = markdown(models, title=heading, notes=notes(unlearned))
    if cautions:
        md += "\n## Warnings\n\n" + "".join(f"- {w}\n" for w in cautions)
    plot_path = plot(models, run_dir / "comparison.png", title=heading)
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(md)

    def paths(value: ArtifactRef | Mapping[str, ArtifactRef]) -> str | dict[str, str]:
        if isinstance(value, ArtifactRef):
            return str(value.path)
        return {k: str(v.path) for k, v in value.items()}

    listed = dict(artifacts)
    splits = listed.get("splits")
    if isinstance(splits, ArtifactRef):
        listed["feature_map"] = companion(splits, "feature_map")
    summary = {
        "run": {"name": run_name, "seed": config.run.seed, "wall_time_s": round(wall_time_s, 2)},
        "config": config.model_dump(mode="json"),
        "models": models,
        "unlearning": {"method": config.unlearn.method, **unlearned.model_dump(exclude={"n_train"})},
        "artifacts": {k: paths(v) for k, v in listed.items()},
        "warnings": cautions,
        "metrics_parquet": paths(listed["metrics"]),
        "report_md": str(run_dir / "report.md"),
        "plot_png": str(plot_path),
    }
    path = write_summary(run_dir / "summary.json", summary)
    return Report(path, md, table_rows(models), heading)
