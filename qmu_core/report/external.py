"""The report's section on a model trained outside QMU: where it came from, and the recipe check.

The recipe check compares the given weights' accuracies with QMU's own training of the same
architecture on the same records with the stated recipe and seed (phase ``qmu_retrained``). Each
accuracy gets a 95 % band for the difference of two proportions on the same number of records,
``1.96 * sqrt(p1 (1 - p1) / n + p2 (1 - p2) / n)``: a difference beyond it says the recipe, the
records or the architecture given may not be the ones the model was trained with, and the
reference models (trained with that recipe) may then not match the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from qmu_core.external import EXTERNAL, RETRAINED

__all__ = ["CHECKED", "external_markdown", "recipe_check"]

CHECKED = {
    "retain_train_acc": ("target_train", False),
    "retain_test_acc": ("test", False),
    "forget_train_acc": ("target_train", True),
    "forget_test_acc": ("test", True),
}
"""Accuracies the recipe check compares, each with the records it is measured on (role, forget class or not)."""


def recipe_check(models: Mapping[str, Mapping[str, Any]], splits: pd.DataFrame) -> dict[str, Any] | None:
    """The given weights against QMU's retraining, per accuracy (None unless both models are in `models`)."""
    given, own = models.get(EXTERNAL), models.get(RETRAINED)
    if given is None or own is None:
        return None
    rows: dict[str, dict[str, Any]] = {}
    for key, (role, forget) in CHECKED.items():
        p1, p2 = given.get(key), own.get(key)
        n = int(((splits["role"] == role) & (splits["is_forget"] == forget)).sum())
        if p1 is None or p2 is None or n == 0:
            continue
        band = 1.96 * math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
        rows[key] = {
            EXTERNAL: p1,
            RETRAINED: p2,
            "difference": p2 - p1,
            "band": band,
            "records": n,
            "within": abs(p2 - p1) <= band,
        }
    return {"accuracies": rows, "agrees": all(r["within"] for r in rows.values())}


def external_markdown(check: Mapping[str, Any], *, weights_note: str, train: str) -> str:
    """The report's section: the model came from outside; the recipe check as a table and one sentence."""
    lines = [
        "## A model trained outside QMU",
        "",
        f"The audited model `{EXTERNAL}` was {weights_note}. QMU trained the reference "
        f"models, and its own model `{RETRAINED}` on the same records, with the recipe given ({train}).",
        "",
        "Recipe check: how far QMU's training lands from the given weights (95 % band of the difference):",
        "",
        "| accuracy | external | QMU's training | difference | band | records |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in check["accuracies"].items():
        lines.append(
            f"| {key.replace('_', ' ')} | {row[EXTERNAL]:.3f} | {row[RETRAINED]:.3f} | "
            f"{row['difference']:+.3f} | ±{row['band']:.3f} | {row['records']} |"
        )
    lines.append("")
    lines.append(
        "Every difference is within its band: the recipe reproduces the model as far as these records can tell."
        if check["agrees"]
        else "**Some difference exceeds its band**: the recipe, the records or the architecture given may not be "
        "the ones the model was trained with, and the reference models, trained with that recipe, may not match "
        "it. The attack numbers are then a weaker bound."
    )
    return "\n".join(lines) + "\n"
