"""The report's section on a model trained outside QMU: where it came from, and the recipe check.

The recipe check asks whether the given weights look like a training with the stated recipe on
the stated records. QMU trains that architecture itself on the same records with the recipe, with
``k`` seeds (``recipe_seeds``: phase ``qmu_retrained`` is the first, audited beside the given
weights), and reads each accuracy of every training on the same records. Trainings with one
recipe differ by their seeds, so the given model's accuracy is compared with their mean ``m`` in a
95 % prediction band for one more training,
``sqrt((t * s * sqrt(1 + 1/k))^2 + 1.96^2 * m~ (1 - m~) / (n + 4))``: ``s`` is the standard deviation
over the ``k`` trainings, ``t`` Student's 97.5 % quantile with ``k - 1`` degrees of freedom
(without a spread, ``k = 1``, only the second term), and the second term the records' sampling
noise on ``n`` records (Agresti-Coull: ``m~ = (m n + 2) / (n + 4)``, so an accuracy of 1.0 keeps a
band), which also keeps the band open when every training lands on the same number. A
difference beyond it says the recipe, the records or the architecture given may not be the ones
the model was trained with, and the reference models (trained with that recipe) may then not
match it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from scipy import stats

from qmu_core.external import EXTERNAL, RETRAINED

__all__ = ["CHECKED", "external_markdown", "recipe_check", "training_accuracies"]

CHECKED = {
    "retain_train_acc": ("target_train", False),
    "retain_test_acc": ("test", False),
    "forget_train_acc": ("target_train", True),
    "forget_test_acc": ("test", True),
}
"""Accuracies the recipe check compares, each with the records it is measured on (role, forget class or not)."""


def training_accuracies(outputs: Sequence[pd.DataFrame]) -> dict[str, list[float]]:
    """Each `CHECKED` accuracy of each of QMU's trainings, from their `outputs` tables."""
    found: dict[str, list[float]] = {key: [] for key in CHECKED}
    for frame in outputs:
        for key, (role, forget) in CHECKED.items():
            rows = frame[(frame["role"] == role) & (frame["is_forget"] == forget)]
            if len(rows):
                found[key].append(float(rows["correct"].mean()))
    return found


def _band(mean: float, sd: float, k: int, n: int) -> float:
    spread = float(stats.t.ppf(0.975, k - 1)) * sd * math.sqrt(1 + 1 / k) if k >= 2 else 0.0
    shrunk = (mean * n + 2) / (n + 4)  # Agresti-Coull: an accuracy of 1.0 still has sampling noise
    return math.sqrt(spread**2 + 1.96**2 * shrunk * (1 - shrunk) / (n + 4))


def recipe_check(
    models: Mapping[str, Mapping[str, Any]], splits: pd.DataFrame, trainings: Mapping[str, list[float]] | None = None
) -> dict[str, Any] | None:
    """The given weights against QMU's trainings with the recipe, per accuracy (module doc).

    Args:
        models: The run's model summaries; None is returned unless both `EXTERNAL` and `RETRAINED` are in it.
        splits: The split table (the number of records of each accuracy).
        trainings: Each accuracy of every training of QMU's (`training_accuracies`); without it, `RETRAINED`'s alone.
    """
    given, own = models.get(EXTERNAL), models.get(RETRAINED)
    if given is None or own is None:
        return None
    rows: dict[str, dict[str, Any]] = {}
    for key, (role, forget) in CHECKED.items():
        p = given.get(key)
        runs = list((trainings or {}).get(key) or ([own[key]] if own.get(key) is not None else []))
        n = int(((splits["role"] == role) & (splits["is_forget"] == forget)).sum())
        if p is None or not runs or n == 0:
            continue
        mean = statistics.fmean(runs)
        sd = statistics.stdev(runs) if len(runs) >= 2 else 0.0
        band = _band(mean, sd, len(runs), n)
        rows[key] = {
            EXTERNAL: p,
            RETRAINED: mean,
            "trainings": runs,
            "sd": sd,
            "difference": p - mean,
            "band": band,
            "records": n,
            "within": abs(p - mean) <= band,
        }
    return {"accuracies": rows, "agrees": all(r["within"] for r in rows.values())}


def external_markdown(check: Mapping[str, Any], *, weights_note: str, train: str) -> str:
    """The report's section: the model came from outside; the recipe check as a table and one sentence."""
    k = max((len(r["trainings"]) for r in check["accuracies"].values()), default=0)
    lines = [
        "## A model trained outside QMU",
        "",
        f"The audited model `{EXTERNAL}` was {weights_note}. QMU trained the reference models with the recipe "
        f"given ({train}), and the same architecture on the same records {k} time(s) with it, with different "
        f"seeds; the first is `{RETRAINED}`, audited beside it.",
        "",
        "Recipe check: each accuracy of the given weights against the mean of QMU's trainings. The 95 % band is "
        "where one more training with this recipe would land: the trainings' spread (standard deviation) and the "
        "records' sampling noise.",
        "",
        "| accuracy | external | QMU's trainings (mean) | spread (sd) | difference | band | records |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, row in check["accuracies"].items():
        lines.append(
            f"| {key.replace('_', ' ')} | {row[EXTERNAL]:.3f} | {row[RETRAINED]:.3f} | {row['sd']:.3f} | "
            f"{row['difference']:+.3f} | ±{row['band']:.3f} | {row['records']} |"
        )
    lines.append("")
    lines.append(
        "Every difference is within its band: the given weights look like a training with this recipe, as far "
        "as these records can tell."
        if check["agrees"]
        else "**Some difference exceeds its band**: the recipe, the records or the architecture given may not be "
        "the ones the model was trained with, and the reference models, trained with that recipe, may not match "
        "it. The attack numbers are then a weaker bound."
    )
    return "\n".join(lines) + "\n"
