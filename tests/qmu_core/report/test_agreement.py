"""Runs compared as verdicts (`qmu_core.report.agreement`): what differs, what does not overlap."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qmu_core.report.agreement import agreement, intervals, verdicts

ROOT = Path(__file__).resolve().parents[3]


def _summary(auc_ci: tuple[float, float], gap: float, gap_ci: tuple[float, float], said: str) -> dict[str, Any]:
    return {
        "leak": [
            {"question": "members vs non-members", "model": "before", "attack": "loss", "auc": sum(auc_ci) / 2}
            | {"ci": list(auc_ci), "answer": "leaks" if auc_ci[0] > 0.5 else "no leak detected", "power": ""}
        ],
        "deletion": {
            "methods": {
                "ga": {
                    "retain_test_acc": {"gap": gap, "gap_ci": list(gap_ci), "verdict": said},
                    "wall_s": {"gap": 1.0, "gap_ci": [0, 2], "verdict": None},  # cost: no verdict, not compared
                }
            }
        },
    }


def test_the_same_conclusions_with_overlapping_intervals_agree() -> None:
    a = _summary((0.6, 0.8), -0.01, (-0.03, 0.02), "within")
    b = _summary((0.62, 0.81), -0.012, (-0.035, 0.015), "within")
    result = agreement({"SSE41": a, "native": b})
    assert result.agrees and len(result.table) == 2
    assert verdicts(a) == {
        "leak: members vs non-members (before)": "leaks",
        "ga vs oracle: retain_test_acc": "within",
    }
    assert intervals(a)["ga vs oracle: retain_test_acc"] == (-0.03, 0.02)
    assert "0 differ" in result.markdown()


def test_a_flipped_verdict_or_disjoint_intervals_are_named() -> None:
    a = _summary((0.6, 0.8), -0.01, (-0.03, 0.02), "within")
    b = copy.deepcopy(a)
    b["leak"][0] |= {"ci": [0.45, 0.62], "answer": "no leak detected"}  # overlaps, but the answer flips
    c = _summary((0.6, 0.8), -0.2, (-0.25, -0.15), "outside")  # GA's gap moved away entirely
    result = agreement({"SSE41": a, "AVX2": b, "native": c})
    assert not result.agrees
    assert result.differ == ["leak: members vs non-members (before)", "ga vs oracle: retain_test_acc"]
    assert result.apart == ["ga vs oracle: retain_test_acc"]
    assert "**within**" in result.markdown() and "**outside**" in result.markdown()


@pytest.mark.slow
def test_tiny_reaches_the_same_verdicts_under_sse41_avx2_and_the_machines_own_isa(tmp_path: Path) -> None:
    """`bench/cpu_agreement.py` on `tiny` with two seeds: three cold runs, one verdict table (exit 0)."""
    done = subprocess.run(
        [sys.executable, "bench/cpu_agreement.py", "--preset", "tiny", "--set", "unlearn.seeds=2",
         "--keep", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env=dict(os.environ),
    )  # fmt: skip
    print(done.stdout[-4000:])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert '"agrees": true' in done.stdout and "0 differ" in done.stdout
