"""The before / after / oracle comparison as numbers.

The metrics table, the summary of each model, the Markdown tables, the comparison plot,
warnings and the report's title.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qmu_core import metrics
from qmu_core.artifacts import ArtifactRef, Output, atomic_path, read_metadata
from qmu_core.config import ATTACKS, METHODS, QMUConfig, derive_seed
from qmu_core.identity import Which
from qmu_core.membership import shadow_warnings
from qmu_core.provenance import AuditFacts, ModelFacts
from qmu_core.unlearning.compare import Z95, combined_half_width

__all__ = [
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
    """`value` as a UI table shows it.

    A float to `digits` decimals (3 significant digits below ``10**-digits``), a whole
    number as an int, NaN as None; lists and tuples element-wise.
    """
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
                f"| {ATTACKS.title(attack)} | {_cell(m.get('auc'), m.get('auc_ci'))} "
                f"| {_cell(m.get('balanced_acc'))} | {_cell(m.get('tpr_at_1pct_fpr'))} "
                f"| {_cell(m.get('tpr_at_0_1pct_fpr'))} | {_cell(m.get('forget_success'))} "
                f"| {_cell(m.get('forget_control'))} | {_cell(m.get('forget_auc'), m.get('forget_auc_ci'))} |"
            )
    return lines


Z80 = 0.841621
"""One-sided 80% normal quantile: with ``Z95 + Z80`` standard errors a test has 80% power."""


def leak_answer(value: float | None, ci: Any) -> tuple[str, str]:
    """A leak question's verdict and what the audit could detect, from an AUC and its 95% CI.

    ``leaks`` when the CI lies above 0.5, ``no leak detected`` when it contains 0.5, ``below
    chance`` when it lies under it. The smallest detectable effect: an AUC of ``0.5 + (Z95 + Z80)
    * SE`` (80% power at the 5% level), with ``SE = CI width / (2 * Z95)``.
    """
    if value is None or not ci or None in ci:
        return "n/a", "no CI"
    lo, hi = float(ci[0]), float(ci[1])
    se = (hi - lo) / (2 * Z95)
    answer = "**leaks**" if lo > 0.5 else "below chance" if hi < 0.5 else "no leak detected"
    return answer, f"CI width {hi - lo:.3f}; detects AUC >= {0.5 + (Z95 + Z80) * se:.3f}"


def _over_seeds(
    models: Mapping[str, Summary], repeats: Mapping[str, Summary], phase: str, attack: str, metric: str
) -> tuple[float | None, list[float] | None, int]:
    """`metric` of `attack` on `phase` as the mean over repeats with its 95% CI over seeds and records.

    One repeat: its own value and bootstrap CI. More: `combined_half_width` of the values and their
    bootstrap standard errors (docs/methods.md). Returns ``(value, ci, repeats counted)``.
    """
    found = [models.get(phase, {})] + [
        summary for p, summary in repeats.items() if (which := Which.of_phase(p)) is not None and which.name == phase
    ]
    values, cis = [], []
    for summary in found:
        m = summary.get("attacks", {}).get(attack, {})
        value, ci = m.get(metric), m.get(f"{metric}_ci")
        if value is not None and ci and None not in ci:
            values.append(float(value))
            cis.append([float(ci[0]), float(ci[1])])
    if len(values) <= 1:
        return (values[0], cis[0], 1) if values else (None, None, 0)
    errors = np.asarray([(hi - lo) / (2 * Z95) for lo, hi in cis])
    mean = float(np.mean(values))
    half = combined_half_width(np.asarray(values), errors)
    return mean, [mean - half, mean + half], len(values)


def leak_rows(models: Mapping[str, Summary], repeats: Mapping[str, Summary] | None = None) -> list[dict[str, Any]]:
    """The "can this audit tell?" questions, answered (summary.json's ``leak``; `leak_questions`).

    The strongest attack is the one with the highest population AUC on the model before
    unlearning (mean over repeats); its forget AUC answers the forget-set questions (chosen on the
    other statistic, so the pick does not inflate it). With `repeats` (``r<k>/<phase>``: the
    training seeds), each AUC is the mean over seeds with the CI over seeds and records
    (`_over_seeds`). One row per question: ``question``, ``model``, ``attack``, ``auc``, ``ci``,
    ``seeds``, ``answer`` (`leak_answer`) and ``power``.
    """
    repeats = repeats or {}
    before = models.get("before", {}).get("attacks", {})
    if not before:
        return []
    strongest = max(before, key=lambda a: _over_seeds(models, repeats, "before", a, "auc")[0] or 0.0)
    asked = [
        ("members vs non-members", "before", "auc"),
        ("forget set vs held-out forget class", "before", "forget_auc"),
    ]
    asked += [("forget set after unlearning", phase, "forget_auc") for phase in models if phase != "before"]
    rows = []
    for question, phase, metric in asked:
        value, ci, seeds = _over_seeds(models, repeats, phase, strongest, metric)
        answer, power = leak_answer(value, ci)  # the power from the whole width; the CI shown within [0, 1]
        ci = None if ci is None else [max(float(ci[0]), 0.0), min(float(ci[1]), 1.0)]
        rows.append(
            {"question": question, "model": phase, "attack": strongest, "auc": value, "ci": ci, "seeds": seeds}
            | {"answer": answer.strip("*"), "power": power}
        )
    return rows


def leak_questions(models: Mapping[str, Summary], repeats: Mapping[str, Summary] | None = None) -> list[str]:
    """Markdown: "can this audit tell?" per question, before unlearning and after each method (`leak_rows`)."""
    rows = leak_rows(models, repeats)
    if not rows:
        return []
    lines = [
        "## Can this audit tell?",
        "",
        f"Strongest attack before unlearning: **{ATTACKS.title(rows[0]['attack'])}** (highest AUC). A leak is an "
        'AUC whose 95% CI lies above 0.5; "detects" is the smallest AUC this audit finds with 80% power at its '
        "size."
        + (
            f" AUCs are means over {rows[0]['seeds']} training seeds, with the CI over seeds and records."
            if rows[0]["seeds"] > 1
            else ""
        ),
        "",
        "| question | model | AUC [95% CI] | answer | can this audit tell? |",
        "|---|---|---:|---|---|",
    ]
    for r in rows:
        answer = f"**{r['answer']}**" if r["answer"] == "leaks" else r["answer"]
        lines.append(f"| {r['question']} | {r['model']} | {_cell(r['auc'], r['ci'])} | {answer} | {r['power']} |")
    lines += [
        "",
        "After unlearning, the question is whether a method's forget AUC matches the oracle's: deletion.md "
        "judges it, with ? where its CI cannot tell.",
    ]
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
        which = Which.of_phase(phase)
        if which is None or which.role != "unlearned" or value is None or oracle is None:
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
    """The report's title line: the model, the data and the deletion request (a class, or the sample ids)."""
    m, d = config.model, config.data
    if d.forget == "class":
        request = f"forget class {d.forget_class}"
    else:
        ids = sorted(d.forget_ids)
        shown = ", ".join(map(str, ids[:5])) + (", ..." if len(ids) > 5 else "")
        request = f"forget {len(ids)} record{'s' if len(ids) != 1 else ''} ({shown})"
    return f"QMU {m.kind} ({m.encoding}) on {d.dataset}: {request}"


def notes(unlearned: Mapping[str, ModelFacts], audit: AuditFacts, *, headline: str) -> list[str]:
    """What the table's rows and columns mean (Markdown bullets)."""
    done = "; ".join(
        f"**{Which.unlearned(m).phase}**: {METHODS.title(m)} ({f.passes} pass{'es' if f.passes != 1 else ''}"
        + ("" if f.reached_stop in (True, None) else ", **did not reach its stopping rule**")
        + ")"
        for m, f in unlearned.items()
    )
    return [
        f"- The MIA rows come from the **{ATTACKS.title(headline)}** attack (`attack.headline`), "
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
    """A published run report: where summary.json is, and the Markdown the task logs.

    The UI's artifacts are built from summary.json by `qmu_prefect.ui.show_run`.
    """

    summary_path: Path | str  # the local file, or its URL for a URL artifact root
    markdown: str


def attack_rows(models: Mapping[str, Summary]) -> list[dict[str, Any]]:
    """Every attack's metrics on every model as flat rows (for a UI table).

    Numbers are `rounded` and each 95% CI is one ``"[low, high]"`` cell.
    """
    rows = []
    for phase, entry in models.items():
        for attack, m in entry.get("attacks", {}).items():
            flat = {k: (f"[{_cell(v[0])}, {_cell(v[1])}]" if isinstance(v, list) else rounded(v)) for k, v in m.items()}
            rows.append({"phase": phase, "attack": attack, **flat})
    return rows
