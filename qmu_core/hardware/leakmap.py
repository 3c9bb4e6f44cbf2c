"""The leakage map (`qmu leak-map`): the audit of a run's models at every noise setting and shot count.

Input: `hw_metrics` tables by noise setting (`NoiseSetting.label`, the rows) and source (the
columns: ``shots=<n>`` and ``exact``, the infinite-shot limit under that noise), plus the
noiseless simulation of the same records. Output: one row per (setting, shots, phase) with the
headline attack's AUC and its 95% CI, TPR at 1% FPR and the forget-set AUC with its CI; a heat
map of each for the model before unlearning (and the oracle, the control); and where the leak
disappears and why:

* **lost to noise**: at infinite shots under that noise the CI already contains 0.5 (the noise
  itself washed the signal out; more shots cannot bring it back);
* **lost to shot variance**: the infinite-shot limit leaks but fewer shots than some count do not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from qmu_core.config.overrides import changed_fields, changed_markdown
from qmu_core.hardware.report import HardwareReport, published

__all__ = ["EXACT", "LeakMap", "leak_rows", "publish", "publish_artifacts", "where_it_goes"]

EXACT = "exact"
"""The column of infinite shots under the setting's noise."""

SIMULATION = "simulation"
"""The noiseless TFQ model on the same records (one row, above the map)."""

_VALUES = (
    "mia_auc",
    "mia_auc_ci_low",
    "mia_auc_ci_high",
    "mia_tpr_at_1pct_fpr",
    "mia_forget_auc",
    "mia_forget_auc_ci_low",
    "mia_forget_auc_ci_high",
    "retain_test_acc",
)
PANELS = (
    ("mia_auc", "plain", "members: AUC"),
    ("mia_tpr_at_1pct_fpr", "plain", "members: TPR @ 1% FPR"),
    ("mia_forget_auc", "plain", "forget set: AUC"),
    ("mia_auc", "shot-aware", "members: AUC, shot-aware LiRA"),
)
"""The heat maps per phase: (metric, attack, title); a shot-aware panel's infinite-shot column is the plain one."""


LeakMap = HardwareReport
"""What `publish` wrote: the Markdown the task logs, the JSON path and the heat map (the hardware report's shape)."""


AWARE = " aware"
"""Suffix of a source scored by shot-aware LiRA (``shots=<n> aware``)."""


def _shots(source: str) -> int | None:
    return None if source == EXACT else int(source.removeprefix("shots=").removesuffix(AWARE))


def _number(v: Any) -> float | None:
    return None if v is None or math.isnan(float(v)) else round(float(v), 4)


def leak_rows(tables: Mapping[str, Mapping[str, pd.DataFrame]], simulation: pd.DataFrame) -> list[dict[str, Any]]:
    """One dict per (setting, shots, phase), the noiseless simulation first.

    Keys: ``setting``, ``shots`` (None: infinite), ``phase``, `_VALUES`, and ``leaks`` /
    ``forget_leaks`` (the AUC's / forget-set AUC's 95% CI lies above 0.5).
    """
    cells = [(SIMULATION, EXACT, simulation)] + [
        (setting, source, table) for setting, by_source in tables.items() for source, table in by_source.items()
    ]
    out: list[dict[str, Any]] = []
    for setting, source, table in cells:
        model_level = table[table["attack"] == ""]
        for phase, part in model_level.groupby("phase", sort=False):
            values = dict(zip(part["metric"], part["value"], strict=True))
            row: dict[str, Any] = {
                "setting": setting,
                "shots": _shots(source),
                "attack": "shot-aware" if source.endswith(AWARE) else "plain",
                "phase": str(phase),
            }
            row |= {k: _number(values.get(k)) for k in _VALUES}
            row["leaks"] = _above(row["mia_auc_ci_low"])
            row["forget_leaks"] = _above(row["mia_forget_auc_ci_low"])
            out.append(row)
    phases = list(dict.fromkeys(r["phase"] for r in out))
    order = sorted(phases, key=lambda p: (p != "before", p != "oracle", phases.index(p)))
    settings = list(dict.fromkeys(r["setting"] for r in out))
    out.sort(key=lambda r: (settings.index(r["setting"]), order.index(r["phase"]), r["shots"] is None, r["shots"] or 0))
    return out


def _above(low: float | None) -> bool | None:
    return None if low is None else low > 0.5


def _of(rows: Sequence[dict[str, Any]], attack: str) -> list[dict[str, Any]]:
    """The rows of `attack` (``plain`` or ``shot-aware``) with the infinite-shot rows, which have no shot noise."""
    return [r for r in rows if r.get("attack", "plain") == attack or r["shots"] is None]


def where_it_goes(rows: Sequence[dict[str, Any]], phase: str, key: str = "leaks", attack: str = "plain") -> list[str]:
    """Per setting, in words: does `phase` leak (`key`: ``leaks`` or ``forget_leaks``), from which shots, why not."""
    lines = []
    rows = _of(rows, attack)
    settings = list(dict.fromkeys(r["setting"] for r in rows if r["setting"] != SIMULATION))
    simulated = next((r for r in rows if r["setting"] == SIMULATION and r["phase"] == phase), None)
    leaks_in_simulation = simulated is not None and bool(simulated[key])
    for setting in settings:
        mine = [r for r in rows if r["setting"] == setting and r["phase"] == phase]
        exact = next((r for r in mine if r["shots"] is None), None)
        finite = sorted((r for r in mine if r["shots"] is not None), key=lambda r: r["shots"])
        if exact is None or exact[key] is None:
            lines.append(f"{setting}: no infinite-shot row.")
            continue
        if not exact[key]:
            why = (
                "lost to noise: the noiseless simulation of these records leaks, but at infinite shots under "
                "this noise the CI contains 0.5 (the leak shrank below what these records can show)"
                if leaks_in_simulation
                else "nothing to lose: the noiseless simulation of these records shows no leak either"
            )
            lines.append(f"{setting}: no leak detected at any shot count; {why}.")
            continue
        # the smallest shot count from which every larger count leaks too
        start = None
        for r in reversed(finite):
            if not r[key]:
                break
            start = r["shots"]
        below = [r["shots"] for r in finite if start is None or r["shots"] < start]
        stray = [r["shots"] for r in finite if r[key] and r["shots"] in below]
        if stray:  # leaks at some smaller count but not at a larger one: the answer flips near the CI's boundary
            leaking = [r["shots"] for r in finite if r[key]]
            missing = [r["shots"] for r in finite if not r[key]]
            lines.append(
                f"{setting}: leaks at infinite shots and at {_listed(leaking)} shots, not at {_listed(missing)}: "
                "near the CI's boundary the answer flips with the draw of shots."
            )
        elif start is None:
            lines.append(
                f"{setting}: leaks at infinite shots only; at {finite[-1]['shots']:,} shots or fewer it is lost to "
                "shot variance."
                if finite
                else f"{setting}: leaks at infinite shots."
            )
        elif start == finite[0]["shots"]:
            lines.append(f"{setting}: leaks at every shot count measured ({start:,} and up) and at infinite shots.")
        else:
            lines.append(
                f"{setting}: leaks from {start:,} shots on; at {max(below):,} shots or fewer it is lost to shot "
                "variance."
            )
    return lines


def _listed(shots: Sequence[int]) -> str:
    """``10, 100 and 1,000``."""
    text = [f"{n:,}" for n in shots]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def recovered(rows: Sequence[dict[str, Any]], phase: str, key: str = "leaks") -> list[str]:
    """Where shot-aware LiRA finds a leak (`key`) that the plain attack misses at the same shots, and the converse."""
    plain = {(r["setting"], r["shots"]): r for r in rows if r["phase"] == phase and r.get("attack") == "plain"}
    aware = {(r["setting"], r["shots"]): r for r in rows if r["phase"] == phase and r.get("attack") == "shot-aware"}
    gained = [k for k, r in aware.items() if r[key] and k in plain and not plain[k][key]]
    lost = [k for k, r in aware.items() if not r[key] and k in plain and plain[k][key]]
    if not aware:
        return ["no shot-aware rows (`hardware.measure_references` is false)."]

    def listed(keys: list[tuple[str, int]]) -> str:
        return ", ".join(f"{setting} at {shots:,} shots" for setting, shots in keys) or "nowhere"

    return [f"shot-aware LiRA finds a leak the plain attack misses: {listed(gained)}.",
            f"the plain attack finds a leak shot-aware LiRA misses: {listed(lost)}."]  # fmt: skip


def _cell(row: dict[str, Any], key: str) -> str:
    v = row[key]
    if v is None:
        return "n/a"
    lo, hi = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def _shots_text(shots: int | None) -> str:
    return "inf" if shots is None else f"{shots:,}"


def _short(shots: int | None) -> str:
    """A heat map's column label: 10, 100, 1k, 10k, 100k, 1M, inf."""
    if shots is None:
        return "inf"
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if shots >= size and shots % size == 0:
            return f"{shots // size}{suffix}"
    return str(shots)


def markdown(rows: Sequence[dict[str, Any]], notes: Sequence[str], config: QMUConfig) -> str:
    """The report: notes, where the leak goes, and the table (every phase)."""
    lines = ["# Leakage map: noise x shots", "", *notes, ""]
    for phase, title in (("before", "Before unlearning"), ("oracle", "Retrain oracle (the control)")):
        if not any(r["phase"] == phase for r in rows):
            continue
        lines += [f"## {title}", ""]
        lines += ["Members vs non-members:", ""] + [f"- {x}" for x in where_it_goes(rows, phase)]
        lines += ["", "Forget set vs held-out forget class:", ""]
        lines += [f"- {x}" for x in where_it_goes(rows, phase, "forget_leaks")] + [""]
        lines += ["Shot-aware LiRA (members):", ""] + [
            f"- {x}" for x in where_it_goes(rows, phase, attack="shot-aware")
        ]
        lines += [f"- {x}" for x in recovered(rows, phase)] + [""]
    head = (
        "| noise | shots | attack | model | AUC [95% CI] | TPR @ 1% FPR | forget-set AUC [95% CI] | retained test acc "
        "| leak? |"
    )
    lines += ["## Table", "", head, "|---|---:|---|---|---|---:|---|---:|---|"]
    for r in rows:
        said = "members" if r["leaks"] else ""
        if r["forget_leaks"]:
            said += (" + " if said else "") + "forget set"
        tpr, acc = r["mia_tpr_at_1pct_fpr"], r["retain_test_acc"]
        lines.append(
            f"| {r['setting']} | {_shots_text(r['shots'])} | {r.get('attack', 'plain')} | {r['phase']} "
            f"| {_cell(r, 'mia_auc')} | {'n/a' if tpr is None else f'{tpr:.3f}'} | {_cell(r, 'mia_forget_auc')} "
            f"| {'n/a' if acc is None else f'{acc:.3f}'} | {said or 'no'} |"
        )
    return "\n".join(lines) + "\n\n" + changed_markdown(config)


def _plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame([r for r in rows if r["setting"] != SIMULATION])
    phases = [p for p in ("before", "oracle") if p in set(frame["phase"])]
    settings = list(dict.fromkeys(frame["setting"]))
    shots = sorted({int(s) for s in frame["shots"].dropna()})
    columns: list[int | None] = [*shots, None]
    fig, axes = plt.subplots(
        len(phases), len(PANELS), figsize=(4.6 * len(PANELS), 0.55 * len(settings) * len(phases) + 2.2), squeeze=False
    )
    for i, phase in enumerate(phases):
        for j, (metric, attack, title) in enumerate(PANELS):
            ax = axes[i][j]
            grid = np.full((len(settings), len(columns)), np.nan)
            marks = np.zeros_like(grid, dtype=bool)
            for r in _of(rows, attack):
                if r["phase"] != phase or r["setting"] not in settings:
                    continue
                a, b = settings.index(r["setting"]), columns.index(r["shots"])
                grid[a, b] = np.nan if r[metric] is None else r[metric]
                key = "forget_leaks" if metric == "mia_forget_auc" else "leaks"
                marks[a, b] = bool(r[key]) and metric != "mia_tpr_at_1pct_fpr"
            low, high = (0.0, 0.2) if metric == "mia_tpr_at_1pct_fpr" else (0.3, 0.8)
            image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=high, aspect="auto")
            for (a, b), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    text = f"{v:.2f}" + ("*" if marks[a, b] else "")
                    colour = "w" if v < (low + high) / 2 else "k"
                    ax.text(b, a, text, ha="center", va="center", fontsize=8, color=colour)
            ax.set_xticks(range(len(columns)), [_short(c) for c in columns], fontsize=8)
            ax.set_yticks(range(len(settings)), settings, fontsize=8)
            ax.set_xlabel("shots per record")
            ax.set_title(f"{phase}: {title}", fontsize=9)
            fig.colorbar(image, ax=ax, fraction=0.04)
    fig.suptitle("Leakage map (* = 95% CI above 0.5: a leak)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def publish(
    tables: Mapping[str, Mapping[str, pd.DataFrame]],
    simulation: pd.DataFrame,
    *,
    config: QMUConfig,
    run_dir: Path,
    wall_time_s: float,
) -> LeakMap:
    """Write ``<run_dir>/leakmap.json|md|png``."""
    rows = leak_rows(tables, simulation)
    hw = config.hardware
    notes = [
        f"Model: `{config.model.kind}`, {config.model.n_qubits} qubits, {config.model.layers} layers"
        f"{', re-uploading' if config.model.reupload else ''}. Attack: `{config.attack.headline}` (the headline), "
        f"fitted on {config.attack.n_shadow} reference models "
        + ("measured the same way (same noise and shots)." if hw.measure_references else "simulated exactly."),
        f"Records: up to {hw.records_per_group} per (role, forget) group; metrics over those records only. "
        "Shots are drawn from each circuit's exact distribution under the noise (the emulator); `inf`: that "
        "distribution itself; `simulation`: the noiseless TFQ model.",
        "A leak: the 95% CI (bootstrap over records) lies above 0.5. Lost to noise: no leak even at infinite "
        "shots under that noise. Lost to shot variance: a leak at infinite shots but not at that shot count.",
        f"Wall time {wall_time_s:.0f} s.",
    ]
    md = markdown(rows, notes, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = run_dir / "leakmap.json"
    payload = {
        "title": "Leakage map: noise x shots",
        "rows": rows,
        "where": {
            phase: {key: where_it_goes(rows, phase, key) for key in ("leaks", "forget_leaks")}
            | {"shot_aware": where_it_goes(rows, phase, attack="shot-aware"), "recovered": recovered(rows, phase)}
            for phase in ("before", "oracle")
        },
        "config": json.loads(config.model_dump_json()),
        "changed_from_preset": changed_fields(config),
        "wall_time_s": wall_time_s,
    }
    summary.write_text(json.dumps(payload, indent=2))
    (run_dir / "leakmap.md").write_text(md)
    plot = _plot(rows, run_dir / "leakmap.png")
    return LeakMap(markdown=md, summary_path=summary, plots={"qmu-leakmap-png": plot})


def publish_artifacts(
    metrics: Mapping[str, Mapping[str, ArtifactRef]],
    simulation: ArtifactRef,
    *,
    config: QMUConfig,
    run_name: str,
    wall_time_s: float,
) -> LeakMap:
    """`publish` from `hw_metrics` refs, into ``<root>/runs/<folder>`` (staged, then renamed; pushed for a URL root)."""
    tables = {setting: {src: artifacts.read(ref) for src, ref in by.items()} for setting, by in metrics.items()}
    return published(
        simulation.root,
        run_name,
        lambda run_dir: publish(
            tables, artifacts.read(simulation), config=config, run_dir=run_dir, wall_time_s=wall_time_s
        ),
    )
