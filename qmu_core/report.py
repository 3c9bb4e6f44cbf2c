"""Before / after / oracle comparison: metrics table, summary, Markdown and a plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qmu_core import metrics, storage
from qmu_core.artifacts import ArtifactRef, Output, atomic_path, companion, read, read_facts, read_metadata
from qmu_core.config import QMUConfig, derive_seed
from qmu_core.errors import ArtifactError
from qmu_core.membership import shadow_warnings
from qmu_core.presets import changed_fields, changed_markdown
from qmu_core.provenance import AuditFacts, ModelFacts
from qmu_core.rocplot import roc_plot
from qmu_core.splits import request_hash
from qmu_core.unlearning.compare import row_phases
from qmu_core.unlearning.report import Deletion, deletion_markdown, deletion_plot, deletion_summary, record_scores

__all__ = [
    "ATTACK_LABELS",
    "HEADLINE",
    "HEADLINE_METRICS",
    "LABELS",
    "Report",
    "attack_rows",
    "attack_tables",
    "compare",
    "markdown",
    "models_summary",
    "notes",
    "plot",
    "publish",
    "rounded",
    "run_warnings",
    "table_rows",
    "title",
    "unlearning_warnings",
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


ATTACK_LABELS = {
    "gap": "gap (member = correct)",
    "paper": "paper (MLP)",
    "loss": "loss threshold",
    "lira_offline": "LiRA offline",
    "lira_online": "LiRA online",
    "rmia": "RMIA",
}

# Per-attack metrics (`metrics.attack_metrics`) the headline attack (`attack.headline`) also
# reports at model level, as ``mia_<metric>``.
HEADLINE_METRICS = (
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "balanced_acc",
    "tpr_at_1pct_fpr",
    "tpr_at_0_1pct_fpr",
    "forget_success",
    "forget_control",
    "forget_auc",
    "forget_auc_ci_low",
    "forget_auc_ci_high",
)


def _flat(values: Mapping[str, float | tuple[float, float]]) -> dict[str, float]:
    """``{"auc_ci": (lo, hi)}`` as ``{"auc_ci_low": lo, "auc_ci_high": hi}``."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, tuple):
            out[f"{key}_low"], out[f"{key}_high"] = float(value[0]), float(value[1])
        else:
            out[key] = float(value)
    return out


def compare(outputs: Mapping[str, pd.DataFrame], scores: pd.DataFrame, audit: AuditFacts, *, headline: str) -> Output:
    """The `metrics` stage: one row per (phase, attack, metric); ROC points as the ``roc`` companion.

    Rows with ``attack == ""`` are model-level: accuracies, the correct-classification baseline
    (``gap_*``) and the headline attack's numbers under their historical ``mia_*`` names.
    Every attack is judged on target members vs non-members (`qmu_core.metrics.attack_metrics`)
    at its threshold fixed on reference data.
    """
    rows: list[dict[str, Any]] = []
    roc: list[pd.DataFrame] = []
    for phase, out in outputs.items():
        model_id = str(out["model_id"].iloc[0])

        def add(attack: str, values: Mapping[str, float], model_id: str = model_id, phase: str = phase) -> None:
            rows.extend(
                {"model_id": model_id, "phase": phase, "attack": attack, "metric": k, "value": float(v)}
                for k, v in values.items()
            )

        add("", metrics.accuracy_metrics(out) | metrics.gap_metrics(out))
        mine = scores[scores["phase"] == phase]
        for attack, part in mine.groupby("attack", sort=False):
            is_member = (part["role"] == "target_train").to_numpy()
            score = part["score"].to_numpy()
            threshold = audit.thresholds[str(attack)]
            values = _flat(
                metrics.attack_metrics(
                    score,
                    is_member,
                    part["is_forget"].to_numpy(),
                    threshold,
                    seed=derive_seed(0, "bootstrap", phase, str(attack)),
                )
            )
            add(str(attack), values | {"threshold": threshold})
            if attack == headline:
                add("", {f"mia_{k}": values[k] for k in HEADLINE_METRICS})
            fpr, tpr = metrics.roc_points(score, is_member)
            roc.append(pd.DataFrame({"phase": phase, "attack": str(attack), "fpr": fpr, "tpr": tpr}))
    roc_frame = pd.concat(roc, ignore_index=True) if roc else pd.DataFrame(columns=["phase", "attack", "fpr", "tpr"])
    return Output(pd.DataFrame(rows), companions={"roc": roc_frame})


Summary = dict[str, Any]

PATHS_NOTE = "relative to the artifact root: the folder that holds runs/<folder>/summary.json"
"""summary.json's ``paths`` entry: how to read the file paths it stores (`qmu_core.storage.in_root`)."""


def models_summary(table: pd.DataFrame) -> dict[str, Summary]:
    """``{phase: {metric: value, "attacks": {attack: {metric: value, "<m>_ci": [low, high]}}}}``.

    NaN becomes None (valid JSON).
    """
    out: dict[str, Summary] = {}
    for phase, attack, metric, raw in zip(
        table["phase"], table["attack"], table["metric"], table["value"], strict=True
    ):
        value = None if math.isnan(float(raw)) else float(raw)
        entry = out.setdefault(str(phase), {})
        if not attack:
            entry[str(metric)] = value
            continue
        slot = entry.setdefault("attacks", {}).setdefault(str(attack), {})
        name = str(metric)
        if name.endswith("_ci_low") or name.endswith("_ci_high"):
            base, end = name.rsplit("_", 1)
            pair = slot.setdefault(base, [None, None])
            pair[0 if end == "low" else 1] = value
        else:
            slot[name] = value
    return out


def rounded(value: Any, digits: int = 3) -> Any:
    """`value` as a UI table shows it: a float to `digits` decimals (3 significant digits below
    ``10**-digits``), a whole number as an int, NaN as None; lists and tuples element-wise."""
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = float(value)
    if math.isnan(number):
        return None
    if math.isinf(number) or number.is_integer():
        return int(number) if number.is_integer() else number
    if abs(number) < 10**-digits:
        return float(f"{number:.{digits}g}")
    return round(number, digits)


def _cell(value: Any, ci: Any = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}"
    if ci and None not in ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def attack_tables(models: Mapping[str, Summary], audit: AuditFacts) -> list[str]:
    """Markdown: one table per model of every attack's metrics (AUC and forget AUC with 95% CIs)."""
    lines = [
        "## Membership attacks",
        "",
        f"Threat model: **{audit.threat_model}**; {audit.n_reference} **{audit.reference}** reference models; "
        f"`paper` attack trained under the **{audit.protocol}** protocol. Members are the target's training "
        "records, non-members its held-out records (same class mix); forget success is the share of "
        "forget-set training records called member at a threshold fixed on reference data, forget control "
        "the same rate on held-out forget-class records, forget AUC separates the two.",
        "",
    ]
    for name, reason in audit.not_applicable.items():
        lines.append(f"- `{name}` not applicable: {reason}.")
    head = (
        "| attack | AUC [95% CI] | balanced acc | TPR @ 1% FPR | TPR @ 0.1% FPR | forget success "
        "| forget control | forget AUC [95% CI] |"
    )
    for phase, entry in models.items():
        lines += ["", f"### {phase}", "", head, "|---|" + "---:|" * 7]
        for attack, m in entry.get("attacks", {}).items():
            lines.append(
                f"| {ATTACK_LABELS.get(attack, attack)} | {_cell(m.get('auc'), m.get('auc_ci'))} "
                f"| {_cell(m.get('balanced_acc'))} | {_cell(m.get('tpr_at_1pct_fpr'))} "
                f"| {_cell(m.get('tpr_at_0_1pct_fpr'))} | {_cell(m.get('forget_success'))} "
                f"| {_cell(m.get('forget_control'))} | {_cell(m.get('forget_auc'), m.get('forget_auc_ci'))} |"
            )
    return lines


def markdown(summary: Mapping[str, Mapping[str, Any]], *, title: str, notes: list[str]) -> str:
    """A Markdown report: the comparison table and what it means."""
    phases = list(summary)
    lines = [f"# {title}", "", "| metric | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]
    for key, label in LABELS.items():
        cells = [summary[p].get(key) for p in phases]
        lines.append(f"| {label} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def plot(summary: Mapping[str, Mapping[str, Any]], path: Path, *, title: str) -> Path:
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


def _with_auc(roc: pd.DataFrame, models: Mapping[str, Summary]) -> pd.DataFrame:
    """`roc` with each (phase, attack)'s AUC from the metrics, for the plot's legend."""
    auc = {(p, a): m.get("auc") for p, e in models.items() for a, m in e.get("attacks", {}).items()}
    values = [auc.get((p, a)) for p, a in zip(roc["phase"], roc["attack"], strict=True)]
    return roc.assign(auc=[float("nan") if v is None else v for v in values])


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


RETAIN_TOLERANCE = 0.10
"""An unlearned model whose retained-test accuracy falls more than this below the oracle's is flagged."""


def unlearning_warnings(models: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Warnings for unlearned models (``after_*``) that damaged the retained classes.

    The standard is the oracle (retrained without the forget set): an unlearned model whose
    retained-test accuracy is more than `RETAIN_TOLERANCE` below the oracle's did not only forget.
    """
    oracle = models.get("oracle", {}).get("retain_test_acc")
    found = []
    for phase, entry in models.items():
        value = entry.get("retain_test_acc")
        if not phase.startswith("after_") or value is None or oracle is None:
            continue
        if value < oracle - RETAIN_TOLERANCE:
            found.append(
                f"{phase}: retained-test accuracy {value:.3f} is {oracle - value:.3f} below the oracle's "
                f"{oracle:.3f} (tolerance {RETAIN_TOLERANCE}): unlearning also destroyed what it should keep. "
                "Read its MIA numbers with that in mind: plain gradient ascent tends to do this once it breaks a "
                "saturated model, and a smaller unlearn.learning_rate or unlearn.max_epochs trades forgetting for it."
            )
    return found


def title(config: QMUConfig) -> str:
    """The report's title line."""
    m, d = config.model, config.data
    return f"QMU {m.kind} ({m.encoding}) on {d.dataset}: forget class {d.forget_class}"


METHOD_NAMES = {
    "ga": "gradient ascent",
    "ssd": "selective synaptic dampening",
    "rga": "relative gradient ascent",
    "salun": "SalUn (saliency-masked random labels)",
    "finetune": "fine-tuning on the retained set",
}


def notes(unlearned: Mapping[str, ModelFacts], audit: AuditFacts, *, headline: str) -> list[str]:
    """What the table's rows and columns mean (Markdown bullets)."""
    done = "; ".join(
        f"**after_{m}**: {METHOD_NAMES.get(m, m)} ({f.passes} pass{'es' if f.passes != 1 else ''}"
        + ("" if f.reached_stop in (True, None) else ", **did not reach its stopping rule**")
        + ")"
        for m, f in unlearned.items()
    )
    return [
        f"- The MIA rows come from the **{ATTACK_LABELS.get(headline, headline)}** attack (`attack.headline`), "
        f"threat model **{audit.threat_model}**; every attack is in the section below.",
        "- **before**: the target model; "
        + (done + "; " if done else "")
        + "**oracle**: retrained from scratch without the deleted records. deletion.md judges every method "
        "against the oracle.",
        "- *MIA forget success*: share of forget-set training records the attack calls member "
        "(the paper's headline). *MIA forget control*: the same call rate on held-out records of "
        "the forget class, which were never trained on.",
        "- MIA AUC compares all target members with target non-members.",
    ]


def table_rows(models: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The comparison as rows ``{metric, phase...}`` (for a UI table), numbers `rounded`."""
    return [{"metric": LABELS[k], **{p: rounded(models[p].get(k)) for p in models}} for k in LABELS]


@dataclass(frozen=True)
class Report:
    """A published run report: where summary.json is, and the Markdown the task logs (the UI's
    artifacts are built from summary.json by `flows.ui.show_run`)."""

    summary_path: Path | str  # the local file, or its URL for a URL artifact root
    markdown: str


def attack_rows(models: Mapping[str, Summary]) -> list[dict[str, Any]]:
    """Every attack's metrics on every model as flat rows (for a UI table), numbers `rounded`
    and each 95% CI as one ``"[low, high]"`` cell."""
    rows = []
    for phase, entry in models.items():
        for attack, m in entry.get("attacks", {}).items():
            flat = {k: (f"[{_cell(v[0])}, {_cell(v[1])}]" if isinstance(v, list) else rounded(v)) for k, v in m.items()}
            rows.append({"phase": phase, "attack": attack, **flat})
    return rows


def _deletion(frame: pd.DataFrame, config: QMUConfig) -> Deletion:
    """The deletion request as the split table (`frame`) records it."""
    ids = frame.loc[(frame["role"] == "target_train") & frame["is_forget"], "sample_id"].to_numpy()
    kind = config.data.forget
    return Deletion(
        kind=kind,
        count=len(ids),
        sha256=request_hash(ids),
        forget_class=config.data.forget_class if kind == "class" else None,
        sample_ids=tuple(sorted(int(i) for i in ids)) if kind == "samples" else (),
    )


def _stop_rule(config: QMUConfig) -> str:
    u = config.unlearn
    if config.data.forget == "class":
        target = f"forget-set training accuracy at or below {u.stop_forget_acc} (`unlearn.stop_forget_acc`)"
    else:
        target = (
            "a forget-set mean -log p(y|x) at or above the model's own mean on held-out records (the deleted records "
            "then look never-trained; their accuracy need not fall, the oracle's does not)"
        )
    return (
        f"GA, RGA and SalUn stop after the first pass with {target}, or after {u.max_epochs} passes "
        f"(`unlearn.max_epochs`); SSD dampens once, fine-tune trains {u.finetune_epochs} epochs; "
        "all report whether they reached the target."
    )


def _unlearned_facts(artifacts: Mapping[str, Any], phases: Sequence[str]) -> dict[str, ModelFacts]:
    """ModelFacts of every unlearned model (``after_*`` phases, every repeat), by phase."""
    out = {}
    for phase in phases:
        ref = artifacts.get(phase)
        if isinstance(ref, ArtifactRef) and phase.split("/")[-1].startswith("after_"):
            out[phase] = read_facts(ref, ModelFacts)
    return out


def _model_extras(models: dict[str, Summary], comparison: pd.DataFrame | None, methods: Sequence[str]) -> None:
    """Add ``wall_s``, ``gap_to_oracle`` and the comparison's other numbers to summary models (repeat 0)."""
    if comparison is None:
        return
    first = comparison[comparison["repeat"] == 0]
    names = row_phases(methods)
    for name, phase in names.items():
        if phase not in models:
            continue
        part = first[first["method"] == name]
        got = dict(zip(part["metric"], part["value"], strict=True))
        gaps = dict(zip(part["metric"], part["gap"], strict=True))
        entry = models[phase]
        for key in ("wall_s", "circuit_evals", "relearn_steps", "js_to_oracle", "reached_stop"):
            if key in got:
                value = got[key]
                entry[key] = None if math.isnan(value) else (bool(value) if key == "reached_stop" else float(value))
        entry["gap_to_oracle"] = {
            k: (None if math.isnan(float(g)) else float(g))
            for k, g in gaps.items()
            if k not in ("reached_stop", "passes")
        }


def _captioned(plots: Mapping[str, Path]) -> dict[str, Path]:
    """The run's two plots by their captions in report.md."""
    captions = {"qmu-comparison-plot": "Before / after / oracle", "qmu-roc-plot": "Membership ROC"}
    return {captions[k]: v for k, v in plots.items() if k in captions}


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}
</style></head><body>
{body}
<h2>Files of this run</h2>
<ul>
{files}
</ul>
</body></html>
"""


def html_page(title: str, markdowns: Sequence[str], run_dir: Path) -> str:
    """``index.html`` of a run folder: its reports rendered, plots linked by their file names (so
    a browser opening the folder shows them), and a list of the folder's files."""
    import html

    import markdown as md_lib  # type: ignore[import-untyped]

    body = "\n<hr>\n".join(md_lib.markdown(m, extensions=["tables"]) for m in markdowns if m)
    names = sorted({p.name for p in run_dir.iterdir() if p.is_file() and storage.temp_owner(p) is None})
    names = sorted({*names, "summary.json"} - {"index.html"})
    files = "\n".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in names)
    return _HTML.format(title=html.escape(title), body=body, files=files)


def publish(
    artifacts: Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]],
    *,
    run_name: str,
    config: QMUConfig,
    wall_time_s: float,
) -> Report:
    """Write ``<root>/runs/<folder>/`` (`storage.run_folder` of `run_name`): summary.json,
    report.md, index.html, comparison.png and roc.png, and (when the run unlearned) deletion.md
    and deletion.png.

    The files go into a hidden temporary folder that is renamed to the run's folder once
    summary.json, the last, is written (`storage.staged_run_folder`): a run folder is whole or
    absent, and a failure (disk full) removes the temporary folder. summary.json names every file
    relative to the artifact root (``model/<key>.parquet``, ``runs/<folder>/report.md``), so a
    copied or moved root keeps working (`storage.in_root` resolves them).

    Args:
        artifacts: Every artifact of the run, by name; a mapping value groups several
            (``{"outputs": {"before": ref, ...}}``). Needs ``metrics`` and ``mia_scores``;
            the unlearned models as ``after_<method>`` (``r<k>/after_<method>`` for repeats),
            ``comparison`` and ``splits`` when the run unlearned.
        run_name: The run's name (directory name).
        config: The run's config (stored in the summary).
        wall_time_s: Seconds since the run started.
    """
    table_ref, scores_ref, comparison_ref = (artifacts.get(k) for k in ("metrics", "mia_scores", "comparison"))
    if not isinstance(table_ref, ArtifactRef) or not isinstance(scores_ref, ArtifactRef):
        raise ArtifactError("publish needs the run's `metrics` and `mia_scores` artifacts.")
    audit = read_facts(scores_ref, AuditFacts)
    roc_ref = companion(table_ref, "roc")
    everything = models_summary(read(table_ref))
    models = {p: v for p, v in everything.items() if "/" not in p}  # repeat 0; repeats k > 0 are "r<k>/<phase>"
    repeats = {p: v for p, v in everything.items() if "/" in p}
    unlearned = _unlearned_facts(artifacts, list(everything))
    methods = [p.removeprefix("after_") for p in models if p.startswith("after_")]
    comparison = read(comparison_ref) if isinstance(comparison_ref, ArtifactRef) else None
    _model_extras(models, comparison, methods)
    with storage.staged_run_folder(table_ref.root, run_name) as staged:  # for a URL root: in the mirror
        return _publish_into(
            staged,
            artifacts,
            run_name=run_name,
            config=config,
            wall_time_s=wall_time_s,
            audit=audit,
            refs=(table_ref, scores_ref, comparison_ref, roc_ref),
            models=models,
            repeats=repeats,
            unlearned=unlearned,
            methods=methods,
            comparison=comparison,
        )


def _publish_into(
    staged: storage.StagedRun,
    artifacts: Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]],
    *,
    run_name: str,
    config: QMUConfig,
    wall_time_s: float,
    audit: AuditFacts,
    refs: tuple[ArtifactRef, ArtifactRef, ArtifactRef | Mapping[str, ArtifactRef] | None, ArtifactRef],
    models: dict[str, Summary],
    repeats: dict[str, Summary],
    unlearned: dict[str, ModelFacts],
    methods: list[str],
    comparison: pd.DataFrame | None,
) -> Report:
    """`publish`'s files, written into the staged folder, which is renamed to the run's folder
    once they are all there (summary.json last)."""
    table_ref, scores_ref, comparison_ref, roc_ref = refs
    run_dir = staged.tmp
    heading = title(config)
    cautions = run_warnings(config, artifacts) + unlearning_warnings(models)
    headline = config.attack.headline
    first = {p.removeprefix("after_"): f for p, f in unlearned.items() if "/" not in p}
    roc = read(roc_ref)
    plots = {
        "qmu-comparison-plot": plot(models, run_dir / "comparison.png", title=heading),
        "qmu-roc-plot": roc_plot(
            _with_auc(roc[roc["phase"].isin(list(models))], models),
            run_dir / "roc.png",
            title=f"{heading}: membership ROC (log-log)",
        ),
    }
    md = markdown(models, title=heading, notes=notes(first, audit, headline=headline))
    md += "\n## Plots\n\n" + "".join(f"![{k}]({v.name})\n\n" for k, v in _captioned(plots).items())
    md += "\n" + "\n".join(attack_tables(models, audit)) + "\n"
    md += "\n" + changed_markdown(config)
    if cautions:
        md += "\n## Warnings\n\n" + "".join(f"- {w}\n" for w in cautions)
    deletion_section = None
    deletion_md = None
    splits_ref = artifacts.get("splits")
    if comparison is not None and isinstance(splits_ref, ArtifactRef):
        split_frame = read(splits_ref)
        deletion = _deletion(split_frame, config)
        not_reached = {
            p.split("/")[-1].removeprefix("after_") + (f" (repeat {p.split('/')[0][1:]})" if "/" in p else ""): (
                f"forget-set accuracy {f.history[-1].get('forget_acc', float('nan')):.3f}"
                + (f", loss {f.history[-1]['forget_loss']:.3f}" if "forget_loss" in f.history[-1] else "")
                + f" after {f.passes} pass(es); target: "
                f"{f.stop_target or f'forget-set accuracy <= {f.stop_acc}'}" + (f"; {f.note}" if f.note else "")
            )
            for p, f in unlearned.items()
            if f.reached_stop is False and f.history
        }
        records = None
        if deletion.kind == "samples":
            cols = {"before": "before", **{m: f"after_{m}" for m in methods}, "oracle": "oracle"}
            records = record_scores(read(scores_ref), headline=headline, phases=cols, sample_ids=deletion.sample_ids)
            labels = split_frame.set_index("sample_id")["label"]
            records.insert(1, "label", records["sample_id"].map(labels))
        deletion_md = deletion_markdown(
            comparison,
            deletion,
            headline=headline,
            attacks=list(audit.thresholds),
            not_reached=not_reached,
            stop_rule=_stop_rule(config),
            records=records,
        )
        plots["qmu-deletion-plot"] = deletion_plot(
            comparison, run_dir / "deletion.png", title=f"{heading}: before / after / oracle"
        )
        with atomic_path(run_dir / "deletion.md") as tmp:
            tmp.write_text(deletion_md)
        deletion_section = deletion_summary(comparison, deletion, not_reached=list(not_reached), headline=headline)
        md += "\nThe deletion report (every method against the oracle, with verdicts) is deletion.md.\n"
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(md)
    with atomic_path(run_dir / "index.html") as tmp:
        tmp.write_text(html_page(heading, [md, deletion_md or ""], run_dir))

    def paths(value: ArtifactRef | Mapping[str, ArtifactRef]) -> str | dict[str, str]:
        if isinstance(value, ArtifactRef):
            return value.rel
        return {k: v.rel for k, v in value.items()}

    listed = {**artifacts, "roc": roc_ref}
    if isinstance(splits_ref, ArtifactRef):
        listed["feature_map"] = companion(splits_ref, "feature_map")
    ga = first.get("ga") or next(iter(first.values()), None)
    summary: dict[str, Any] = {
        "run": {
            "name": run_name,
            "folder": "",  # set when the folder is chosen (`write_last`)
            "seed": config.run.seed,
            "wall_time_s": round(wall_time_s, 2),
        },
        "config": config.model_dump(mode="json"),
        "changed_from_preset": changed_fields(config),
        "mia_attack": headline,
        "audit": audit.model_dump(),
        "models": models,
        "repeats": repeats,
        "unlearning": (
            {
                "method": ga.method or "ga",
                **ga.model_dump(exclude={"n_train"}),
                "methods": {m: f.model_dump(exclude={"n_train"}) for m, f in first.items()},
            }
            if ga
            else None
        ),
        "deletion": deletion_section,
        "artifacts": {k: paths(v) for k, v in listed.items()},
        "warnings": cautions,
        "metrics_parquet": table_ref.rel,
        "scores_parquet": scores_ref.rel,
        "roc_parquet": roc_ref.rel,
        "comparison_parquet": comparison_ref.rel if isinstance(comparison_ref, ArtifactRef) else None,
        "paths": PATHS_NOTE,
    }
    files = {
        "report_md": "report.md",
        "index_html": "index.html",
        "deletion_md": "deletion.md" if deletion_md else None,
        "plot_png": plots["qmu-comparison-plot"].name,
        "roc_png": plots["qmu-roc-plot"].name,
        "deletion_png": plots["qmu-deletion-plot"].name if "qmu-deletion-plot" in plots else None,
    }

    def write_last(rel: str) -> None:  # the folder's name is known only now
        summary["run"]["folder"] = rel.removeprefix("runs/")
        summary.update({k: f"{rel}/{name}" if name else None for k, name in files.items()})
        write_summary(run_dir / "summary.json", summary)

    run_rel = staged.commit(write_last)
    run_dir = storage.local_dir(table_ref.root) / run_rel
    path: Path | str = run_dir / "summary.json"
    remote = storage.remote(table_ref.root)
    if remote is not None:  # the run's files, then summary.json: a summary on the root means a whole run
        names = sorted(p.name for p in run_dir.iterdir() if p.is_file() and storage.temp_owner(p) is None)
        remote.push([f"{run_rel}/{n}" for n in names if n != "summary.json"], last=f"{run_rel}/summary.json")
        path = remote.location(f"{run_rel}/summary.json")
    return Report(path, md)
