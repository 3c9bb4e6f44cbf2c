"""Do runs of the same study agree as verdicts? (issue 29 item 5; `bench/cpu_agreement.py`).

TensorFlow's float32 kernels differ by CPU instruction set, so runs on two machines differ in
their last bits and then in their numbers. What must not differ is what the reports conclude:
every leak answer (`qmu_core.report.tables.leak_rows`) and every verdict against the oracle
that deletion.md shows (`qmu_core.unlearning.compare.verdict`). Their intervals must overlap.

Reads only ``summary.json`` dicts (no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qmu_core.unlearning.report import VERDICT_METRICS

__all__ = ["Agreement", "agreement", "intervals", "verdicts"]


def _conclusions(summary: Mapping[str, Any]) -> dict[str, tuple[str, tuple[float, float] | None]]:
    """Every conclusion of one run with the interval behind it (None if it has none)."""
    out: dict[str, tuple[str, tuple[float, float] | None]] = {}
    for r in summary.get("leak", []):
        ci = r.get("ci")
        span = (float(ci[0]), float(ci[1])) if ci and None not in ci else None
        out[f"leak: {r['question']} ({r['model']})"] = (str(r["answer"]), span)
    for method, metrics in summary.get("deletion", {}).get("methods", {}).items():
        for metric in VERDICT_METRICS:
            entry = metrics.get(metric, {})
            if entry.get("verdict") is None:
                continue
            lo, hi = (entry.get("gap_ci") or [None, None])[:2]
            if lo is None or hi is None:
                lo = hi = entry["gap"]
            out[f"{method} vs oracle: {metric}"] = (str(entry["verdict"]), (float(lo), float(hi)))
    return out


def verdicts(summary: Mapping[str, Any]) -> dict[str, str]:
    """Every conclusion of one run: ``{question: answer}`` for the leak questions and the oracle verdicts."""
    return {k: said for k, (said, _) in _conclusions(summary).items()}


def intervals(summary: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The interval behind each conclusion: the AUC's 95% CI, or the gap's (the point gap without one)."""
    return {k: span for k, (_, span) in _conclusions(summary).items() if span is not None}


@dataclass(frozen=True)
class Agreement:
    """Runs side by side: every conclusion per run, those that differ, and intervals that do not overlap."""

    runs: tuple[str, ...]
    table: dict[str, dict[str, str]]
    differ: list[str]
    apart: list[str]

    @property
    def agrees(self) -> bool:
        """Every conclusion the same in every run, and every interval shared by all of them."""
        return not self.differ and not self.apart

    def markdown(self) -> str:
        """The conclusions side by side, differences in bold."""
        lines = ["| conclusion | " + " | ".join(self.runs) + " |", "|---|" + "---|" * len(self.runs)]
        for key, said in self.table.items():
            cells = [said.get(r, "–") for r in self.runs]
            if key in self.differ:
                cells = [f"**{c}**" for c in cells]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(
            f"{len(self.table)} conclusions; {len(self.differ)} differ; "
            f"{len(self.apart)} with intervals that do not overlap"
            + (": " + "; ".join(self.apart) if self.apart else "")
            + "."
        )
        return "\n".join(lines) + "\n"


def agreement(summaries: Mapping[str, Mapping[str, Any]]) -> Agreement:
    """Compare runs (``{label: summary.json}``): their conclusions and their intervals."""
    runs = tuple(summaries)
    said = {label: verdicts(s) for label, s in summaries.items()}
    spans = {label: intervals(s) for label, s in summaries.items()}
    keys = list(dict.fromkeys(k for label in runs for k in said[label]))
    table = {k: {label: said[label][k] for label in runs if k in said[label]} for k in keys}
    differ = [k for k, row in table.items() if len(row) != len(runs) or len(set(row.values())) > 1]
    apart = []
    for k in keys:
        got = [spans[label][k] for label in runs if k in spans[label]]
        if got and max(lo for lo, _ in got) > min(hi for _, hi in got) + 1e-12:
            apart.append(k)
    return Agreement(runs, table, differ, apart)
