"""The hardware and shot-count reports: one table, a Markdown page, a PNG, and a JSON summary.

Input: `hw_metrics` tables by *source* (``simulation``: the exact noiseless model on the same
records; ``exact``: the infinite-shot limit under the sampler's noise; ``measured``: the shots;
``shots=<n>``: the study's repetitions). Each row of the report is one (source, phase) with the
numbers an auditor compares: accuracies, and the headline attack's AUC, TPR at 1 % FPR,
forget-set success and forget-set AUC, all over the measured records only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qmu_core import artifacts, frames, storage
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from qmu_core.config.overrides import changed_fields, changed_markdown
from qmu_core.hardware import samplers

if TYPE_CHECKING:
    from qmu_core.identity import Which

__all__ = [
    "COLUMNS",
    "HardwareReport",
    "circuit_stats",
    "output_variance",
    "publish",
    "publish_artifacts",
    "published",
    "rows",
    "variance_by_source",
]

COLUMNS = (
    "retain_test_acc",
    "forget_test_acc",
    "forget_train_acc",
    "mia_auc",
    "mia_tpr_at_1pct_fpr",
    "mia_forget_success",
    "mia_forget_auc",
)
"""The report's numbers per (source, phase): `qmu_core.report.compare`'s model-level metrics."""


@dataclass
class HardwareReport:
    """What `publish` wrote: the Markdown the task logs, the JSON (the UI is built from it) and the plots."""

    markdown: str
    summary_path: Path | str  # the local file, or its URL for a URL artifact root
    plots: dict[str, Path] = field(default_factory=dict)


def rows(tables: Mapping[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """One dict per (source, phase): ``source``, ``phase`` and `COLUMNS` (None where missing)."""
    out: list[dict[str, Any]] = []
    for source, table in tables.items():
        model_level = table[table["attack"] == ""]
        for phase, part in model_level.groupby("phase", sort=False):
            values = dict(zip(part["metric"], part["value"], strict=True))
            row: dict[str, Any] = {"source": source, "phase": str(phase)}
            for column in COLUMNS:
                v = values.get(column)
                row[column] = None if v is None or math.isnan(float(v)) else round(float(v), 4)
            out.append(row)
    return out


def output_variance(measured: pd.DataFrame, exact: pd.DataFrame, sample_ids: np.ndarray) -> float:
    """Mean over the measured records of sum_k (p_k(shots) - p_k(exact))^2: the shot noise of the outputs."""
    keep = {int(i) for i in sample_ids}
    a = measured[measured["sample_id"].isin(keep)].sort_values("sample_id")
    b = exact[exact["sample_id"].isin(keep)].sort_values("sample_id")
    pa_ = frames.stack(a["prob"], np.float64)
    pb = frames.stack(b["prob"], np.float64)
    return float(np.mean(np.sum((pa_ - pb) ** 2, axis=1)))


def circuit_stats(frames_: Sequence[pd.DataFrame]) -> dict[str, float]:
    """Mean depth and two-qubit counts before and after compilation over prepared-circuit tables."""
    both = pd.concat(list(frames_), ignore_index=True)
    keys = ("depth_before", "depth_after", "two_qubit_before", "two_qubit_after")
    return {k: float(both[k].mean()) for k in keys}


def variance_by_source(
    outputs: Mapping[str, Mapping[str, pd.DataFrame]], sample_ids: np.ndarray, *, exact: str
) -> dict[tuple[str, str], float]:
    """``{(source, phase): output_variance}`` of every source against source `exact`."""
    reference = outputs[exact]
    return {
        (source, phase): output_variance(table, reference[phase], sample_ids)
        for source, by_phase in outputs.items()
        for phase, table in by_phase.items()
        if phase in reference
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)


def _markdown(title: str, table: list[dict[str, Any]], notes: list[str]) -> str:
    if not table:
        return f"# {title}\n\nNo rows.\n"
    keys = list(table[0])
    lines = [f"# {title}", "", *notes, "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r[k]) for k in keys) + " |" for r in table]
    return "\n".join(lines) + "\n"


def _study_plot(table: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(table)
    shot_rows = frame[frame["source"].str.startswith("shots=")].copy()
    shot_rows["shots"] = shot_rows["source"].str.removeprefix("shots=").astype(int)
    metrics = [*COLUMNS, "output_variance"]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5), constrained_layout=True)
    for ax, metric in zip(axes.ravel(), metrics, strict=True):
        for i, (phase, part) in enumerate(shot_rows.groupby("phase", sort=False)):
            part = part.sort_values("shots")
            colour = f"C{i % 10}"
            ax.plot(part["shots"], part[metric].astype(float), "o-", color=colour, label=str(phase))
            exact = frame[(frame["source"] == "exact") & (frame["phase"] == phase)]
            if metric != "output_variance" and len(exact) and exact[metric].notna().all():
                ax.axhline(float(exact[metric].iloc[0]), color=colour, ls="--", lw=0.8)
        ax.set_xscale("log")
        if metric == "output_variance":
            ax.set_yscale("log")
        ax.set_title(metric)
        ax.set_xlabel("shots per record")
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Shot-count study (dashed: infinite shots under the same noise)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _hardware_plot(table: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(table)
    every = list(dict.fromkeys(frame["phase"]))
    phases = [p for p in every if "/" not in p]  # repeat 0: the other seeds' rows are in the table
    sources = list(dict.fromkeys(frame["source"]))
    metrics = ["retain_test_acc", "forget_train_acc", "mia_auc", "mia_forget_success"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), constrained_layout=True)
    width = 0.8 / max(1, len(sources))
    for ax, metric in zip(axes, metrics, strict=True):
        for j, source in enumerate(sources):
            part = frame[frame["source"] == source].set_index("phase").reindex(phases)
            values = part[metric].astype(float).fillna(0.0).to_numpy()
            ax.bar(np.arange(len(phases)) + j * width, values, width, label=source)
        ax.set_xticks(np.arange(len(phases)) + width * (len(sources) - 1) / 2, phases, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(metric)
    axes[0].legend(fontsize=7)
    if len(phases) < len(every):
        fig.suptitle("repeat 0 (training seed 0); the table has every measured seed", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def deletion_rows(tables: Mapping[str, pd.DataFrame], attacks: Sequence[str]) -> list[dict[str, Any]]:
    """Unlearning judged on the device: per (source, model) each attack's forget-set AUC against the oracle's.

    A model is a phase of repeat 0 (``after_ga``) joined with the same phase of every other measured
    repeat (``r1/after_ga``: another training seed), each against its own repeat's oracle. Per attack
    of `attacks`: ``<a>:forget_auc`` (mean over seeds) with its 95% CI, ``<a>:forget_success``
    (mean), ``<a>:leak`` (`tables.leak_answer` of the forget-set AUC), ``<a>:gap`` (mean of the
    per-seed gaps to the oracle) with its CI, and ``<a>:verdict`` (`compare.verdict`: within,
    outside or inconclusive of the oracle); ``seeds`` counts the repeats. The CIs combine the seeds'
    spread with the record bootstrap as the simulation report does (`compare.combined_half_width`:
    the records are the same in every repeat); one seed gives the bootstrap CI alone. A gap's
    record-level error takes the model's and the oracle's as independent. Sources without an
    oracle are left out.
    """
    from qmu_core.identity import Which

    out: list[dict[str, Any]] = []
    for source, table in tables.items():
        values = {
            (str(p), str(a), str(m)): float(v)
            for p, a, m, v in table[["phase", "attack", "metric", "value"]].itertuples(index=False)
        }
        seeds: dict[str, list[Which]] = {}
        for phase in dict.fromkeys(str(p) for p in table["phase"]):
            which = Which.of_phase(phase)
            if which is not None:
                seeds.setdefault(which.name, []).append(which)
        if "oracle" not in seeds:
            continue
        for name, found in seeds.items():
            row: dict[str, Any] = {"source": source, "phase": name, "seeds": len(found)}
            for attack in attacks:
                row |= _judged_over_seeds(values, found, attack)
            out.append(row)
    return out


def _judged_over_seeds(
    values: Mapping[tuple[str, str, str], float], found: Sequence[Which], attack: str
) -> dict[str, Any]:
    """`deletion_rows`' columns of `attack` for one model over its repeats `found`."""
    from qmu_core.identity import Which
    from qmu_core.report.tables import leak_answer
    from qmu_core.unlearning.compare import Z95, verdict

    def at(phase: str, metric: str) -> float:
        return values.get((phase, attack, metric), math.nan)

    def se(phase: str) -> float:
        return (at(phase, "forget_auc_ci_high") - at(phase, "forget_auc_ci_low")) / (2 * Z95)

    aucs, auc_se, gaps, gap_se, success = [], [], [], [], []
    for which in found:
        oracle = Which.oracle(which.repeat).phase
        auc, o_auc = at(which.phase, "forget_auc"), at(oracle, "forget_auc")
        if math.isnan(auc):
            continue
        aucs.append(auc)
        auc_se.append(se(which.phase))
        success.append(at(which.phase, "forget_success"))
        gaps.append(auc - o_auc)
        gap_se.append(math.hypot(se(which.phase), se(oracle)))
    mean, lo, hi = _mean_ci(aucs, auc_se, (0.0, 1.0))
    gap, g_lo, g_hi = _mean_ci(gaps, gap_se, (-1.0, 1.0))
    auc_ci = None if math.isnan(lo) else [round(lo, 4), round(hi, 4)]
    is_oracle = found[0].name == "oracle"
    kept = [v for v in success if not math.isnan(v)]
    return {
        f"{attack}:forget_auc": _rounded(mean),
        f"{attack}:forget_auc_ci": auc_ci,
        f"{attack}:forget_success": _rounded(float(np.mean(kept))) if kept else None,
        f"{attack}:leak": leak_answer(_rounded(mean), auc_ci)[0],
        f"{attack}:gap": _rounded(gap),
        f"{attack}:gap_ci": None if math.isnan(g_lo) else [round(g_lo, 4), round(g_hi, 4)],
        f"{attack}:verdict": None if is_oracle or math.isnan(gap) else verdict("forget_auc", gap, g_lo, g_hi),
    }


def _mean_ci(v: Sequence[float], se: Sequence[float], bound: tuple[float, float]) -> tuple[float, float, float]:
    """Mean of `v` and its 95% CI over seeds and records (`compare.combined_half_width`), clipped to `bound`."""
    from qmu_core.unlearning.compare import combined_half_width

    if not v:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(v))
    half = combined_half_width(np.asarray(v, dtype=np.float64), np.asarray(se, dtype=np.float64))
    return mean, max(mean - half, bound[0]), min(mean + half, bound[1])


def _rounded(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 4)


def _ci_text(v: Any, ci: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def deletion_markdown(rows: Sequence[dict[str, Any]], attacks: Sequence[str], protocol: str) -> str:
    """The section "Unlearning judged on the device" of the hardware report (`deletion_rows`)."""
    if not rows:
        return ""
    seeds = max(int(r.get("seeds", 1)) for r in rows)
    over = (
        f"mean over {seeds} training seeds (repeats 0-{seeds - 1}), each against its own seed's oracle, with the "
        "95% CI over seeds and records (docs/methods.md)"
        if seeds > 1
        else "repeat 0 only (CIs over records only; `hardware.seeds` measures more training seeds)"
    )
    lines = [
        "## Unlearning judged on the device",
        "",
        "Each model's forget set (deleted training records) against held-out records of the forget class, "
        f"beside the retrain oracle's, over the measured records: {over}. Verdict "
        "against the oracle's forget-set AUC (tolerance 0.05): within, outside, or inconclusive (the gap's CI "
        f"straddles the tolerance). `paper`: the paper's attack under the **{protocol}** protocol"
        + (
            " (fitted on the target's own outputs, so it can learn the records rather than membership; the "
            "oracle's row is its control: it never trained on the forget set)."
            if protocol == "paper"
            else " (fitted on shadow models); `--set attack.protocol=paper` shows the paper's own protocol."
        ),
        "",
    ]
    head = "| source | model | seeds |"
    rule = "|---|---|---:|"
    for a in attacks:
        head += f" {a} forget AUC [95% CI] | leak? | gap to oracle [95% CI] | verdict | {a} forget success |"
        rule += "---|---|---|---|---:|"
    lines += [head, rule]
    for r in rows:
        cells = [r["source"], r["phase"], r.get("seeds", 1)]
        for a in attacks:
            success = r[f"{a}:forget_success"]
            cells += [
                _ci_text(r[f"{a}:forget_auc"], r[f"{a}:forget_auc_ci"]),
                r[f"{a}:leak"],
                "–" if r["phase"] == "oracle" else _ci_text(r[f"{a}:gap"], r[f"{a}:gap_ci"]),
                r[f"{a}:verdict"] or "–",
                "n/a" if success is None else f"{success:.3f}",
            ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def publish(
    tables: Mapping[str, pd.DataFrame],
    *,
    config: QMUConfig,
    run_dir: Path,
    sampler: str,
    study: bool,
    circuit_stats: Mapping[str, float],
    variance: Mapping[tuple[str, str], float] | None = None,
    wall_time_s: float,
) -> HardwareReport:
    """Write ``<run_dir>/hardware.json|md|png`` (or ``shots.*`` for the study).

    Args:
        tables: `hw_metrics` tables by source.
        config: The run's config (stored in the JSON).
        run_dir: Directory to write into (created).
        sampler: The sampler's one-line name (`samplers.SamplerKind.describes`).
        study: Shot-count study (plot against shots) instead of one re-evaluation.
        circuit_stats: Mean depth / two-qubit counts before and after compilation.
        variance: ``{(source, phase): output_variance}`` (study).
        wall_time_s: Seconds the flow ran.
    """
    table = rows(tables)
    if variance is not None:
        for row in table:
            row["output_variance"] = variance.get((row["source"], row["phase"]))
    name = "shots" if study else "hardware"
    hw = config.hardware
    title = (
        f"Shot-count study on {sampler}" if study else f"Re-evaluation on {sampler}, {hw.repetitions} shots per record"
    )
    stats = ", ".join(f"{k} {v:.0f}" for k, v in circuit_stats.items())
    notes = [
        f"Records measured: up to {hw.records_per_group} per (role, forget) group; metrics over those records only.",
        "`simulation`: the exact noiseless model (TFQ) on the same records; `exact`: infinite shots under the "
        "sampler's noise (emulator); `measured` / `shots=<n>`: finite shots.",
        f"Circuits (mean per record): {stats}.",
        (
            "Reference models: measured on the same sampler and shots (`hardware.measure_references`)."
            if hw.measure_references
            else "Reference models: exact simulation, not measured (`hardware.measure_references` is false), so "
            "the attacks compare noisy outputs with noiseless references."
        ),
        f"Wall time {wall_time_s:.0f} s.",
    ]
    attacks = list(dict.fromkeys([config.attack.headline, "paper"]))
    deletion = [] if study else deletion_rows(tables, attacks)
    md = _markdown(title, table, notes) + "\n" + deletion_markdown(deletion, attacks, config.attack.protocol)
    md += "\n" + changed_markdown(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = run_dir / f"{name}.json"
    payload = {
        "title": title,
        "sampler": sampler,
        "rows": table,
        "deletion": deletion,
        "circuits": dict(circuit_stats),
        "config": json.loads(config.model_dump_json()),
        "changed_from_preset": changed_fields(config),
        "wall_time_s": wall_time_s,
    }
    summary.write_text(json.dumps(payload, indent=2))
    (run_dir / f"{name}.md").write_text(md)
    plot = (_study_plot if study else _hardware_plot)(table, run_dir / f"{name}.png")
    return HardwareReport(markdown=md, summary_path=summary, plots={f"qmu-{name}-png": plot})


def publish_artifacts(
    metrics: Mapping[str, ArtifactRef],
    circuits: Mapping[str, ArtifactRef],
    records: ArtifactRef,
    *,
    config: QMUConfig,
    run_name: str,
    outputs: Mapping[str, Mapping[str, ArtifactRef]] | None,
    wall_time_s: float,
) -> HardwareReport:
    """`publish` from artifact refs.

    The refs are `hw_metrics` by source, prepared circuits by phase, the measured records and (study)
    the `hw_outputs` by source and phase. Writes under ``<root>/runs/<folder>`` (`storage.run_folder`
    of `run_name`), into a temporary folder renamed to it once whole (`storage.staged_run_folder`).
    """
    tables = {k: artifacts.read(v) for k, v in metrics.items()}
    stats = circuit_stats([artifacts.read(v) for v in circuits.values()])
    variance = None
    if outputs is not None:
        ids = artifacts.read(records)["sample_id"].to_numpy()
        read = {src: {ph: artifacts.read(r) for ph, r in by_phase.items()} for src, by_phase in outputs.items()}
        variance = variance_by_source(read, ids, exact="exact")
    root = next(iter(metrics.values())).root
    return published(
        root,
        run_name,
        lambda run_dir: publish(
            tables,
            config=config,
            run_dir=run_dir,
            sampler=samplers.resolve(config.hardware.sampler).describes,
            study=outputs is not None,
            circuit_stats=stats,
            variance=variance,
            wall_time_s=wall_time_s,
        ),
    )


def published(root: Path | str, run_name: str, write: Callable[[Path], HardwareReport]) -> HardwareReport:
    """`write` a report into the run folder of `run_name` under `root`; its paths there, or its URL.

    It writes into a temporary folder renamed to the run's folder once whole
    (`storage.staged_run_folder`; for a URL root: in the local mirror, then the plots, the
    Markdown and the JSON summary last are uploaded).
    """
    with storage.staged_run_folder(root, run_name) as staged:
        report = write(staged.tmp)
        run_rel = staged.commit()
    run_dir = storage.local_dir(root) / run_rel
    name = Path(report.summary_path).name
    report = replace(report, summary_path=run_dir / name, plots={k: run_dir / p.name for k, p in report.plots.items()})
    remote = storage.remote(root)
    if remote is None:
        return report
    summary = f"{run_rel}/{name}"
    remote.push(
        [f"{run_rel}/{p.name}" for p in report.plots.values()] + [summary.replace(".json", ".md")], last=summary
    )
    return replace(report, summary_path=remote.location(summary))
