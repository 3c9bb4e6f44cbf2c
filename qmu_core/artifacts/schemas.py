"""What each stage's artifact holds: stage versions, column schemas and the columns that must be finite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from qmu_core.errors import ArtifactError

CORE_VERSION = "0.1.0"  # = qmu_core.__version__

# Bump a stage's version whenever the meaning or schema of its output changes: the integrity
# record's code digest covers the stage body in tasks/ only, not qmu_core, and a bump changes
# every downstream key.
STAGE_VERSIONS: dict[str, int] = {
    "splits": 6,  # v6: no zero-variance PCA directions; v5: roles stratified by class (v4: float64 features)
    "feature_map": 4,  # v4: zero-variance directions dropped (v3: float64 PCA, bounds from the same projection)
    "model": 1,  # facts gained optional wall_s, circuit_evals, method, stop_acc (None in older artifacts)
    "outputs": 2,  # v2: the <Z> read-out per record (`z`)
    "membership": 1,
    "mia_scores": 2,  # v2: every attack fitted once, every audited model in one table
    "metrics": 3,  # v3: per-attack metrics (`attack` column) with CIs; ROC points as its companion
    "roc": 1,
    "relearn": 1,
    "comparison": 2,  # v2: each value's record-level standard error (`value_se`, `oracle_se`)
    "ulira": 2,  # v2: CIs count the null models' own spread; per (fit, scored model, forget record) its score
    "hw_records": 1,  # the records a hardware run measures
    "circuits": 1,  # prepared circuits (Cirq JSON) per record
    "distribution": 1,  # exact output distribution per record under a noise model (the emulator)
    "shots": 1,  # raw measurements, one integer per shot
    "hw_outputs": 1,  # outputs with the measured records' rows from shots (or the exact distribution)
    "hw_draws": 1,  # outputs with the measured records' rows from shots drawn as counts from the exact distribution
    "hw_scores": 1,  # shot-aware LiRA's per-record scores of models measured with finite shots (mia_scores' schema)
    "hw_metrics": 1,  # accuracy and attack metrics over the measured records, per source
}

_F32_LIST = pa.list_(pa.float32())

SCHEMAS: dict[str, pa.Schema] = {
    "splits": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("label", pa.int64()),
            ("role", pa.string()),
            ("is_forget", pa.bool_()),
            ("x", _F32_LIST),
            ("pixels", _F32_LIST),
        ]
    ),
    "feature_map": pa.schema([("name", pa.string()), ("row", pa.int64()), ("values", pa.list_(pa.float64()))]),
    "model": pa.schema(
        [
            ("model_id", pa.string()),
            ("variable", pa.string()),
            ("shape", pa.list_(pa.int64())),
            ("values", _F32_LIST),
        ]
    ),
    "outputs": pa.schema(
        [
            ("model_id", pa.string()),
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("label", pa.int64()),
            ("is_forget", pa.bool_()),
            ("prob", _F32_LIST),
            ("z", _F32_LIST),
            ("loss", pa.float64()),
            ("correct", pa.bool_()),
        ]
    ),
    "membership": pa.schema([("model_id", pa.string()), ("sample_id", pa.int64()), ("is_member", pa.bool_())]),
    "mia_scores": pa.schema(
        [
            ("phase", pa.string()),
            ("model_id", pa.string()),
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("is_forget", pa.bool_()),
            ("attack", pa.string()),
            ("score", pa.float64()),
            ("is_member", pa.bool_()),
        ]
    ),
    "metrics": pa.schema(
        [
            ("model_id", pa.string()),
            ("phase", pa.string()),
            ("attack", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
    "roc": pa.schema([("phase", pa.string()), ("attack", pa.string()), ("fpr", pa.float64()), ("tpr", pa.float64())]),
    "relearn": pa.schema([("model_id", pa.string()), ("step", pa.int64()), ("forget_acc", pa.float64())]),
    "comparison": pa.schema(
        [
            ("repeat", pa.int64()),
            ("method", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
            ("oracle", pa.float64()),
            ("gap", pa.float64()),
            ("value_se", pa.float64()),
            ("oracle_se", pa.float64()),
        ]
    ),
    "ulira": pa.schema(
        [
            ("fit", pa.string()),
            ("phase", pa.string()),
            ("model_id", pa.string()),
            ("sample_id", pa.int64()),
            ("score", pa.float64()),
        ]
    ),
    "hw_records": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("role", pa.string()),
            ("label", pa.int64()),
            ("is_forget", pa.bool_()),
            ("x", _F32_LIST),
        ]
    ),
    "circuits": pa.schema(
        [
            ("sample_id", pa.int64()),
            ("target", pa.string()),
            ("circuit_json", pa.large_string()),
            ("depth_before", pa.int64()),
            ("depth_after", pa.int64()),
            ("two_qubit_before", pa.int64()),
            ("two_qubit_after", pa.int64()),
        ]
    ),
    "distribution": pa.schema([("sample_id", pa.int64()), ("prob", pa.list_(pa.float64()))]),
    "shots": pa.schema([("sample_id", pa.int64()), ("shots", pa.list_(pa.uint16()))]),
    "hw_metrics": pa.schema(
        [
            ("source", pa.string()),
            ("model_id", pa.string()),
            ("phase", pa.string()),
            ("attack", pa.string()),
            ("metric", pa.string()),
            ("value", pa.float64()),
        ]
    ),
}
SCHEMAS["hw_outputs"] = SCHEMAS["outputs"]
SCHEMAS["hw_draws"] = SCHEMAS["outputs"]
SCHEMAS["hw_scores"] = SCHEMAS["mia_scores"]

# Columns that must hold finite numbers only, checked at write (naming the stage and key) and at
# read (naming the file): weights, probabilities and <Z> read-outs, attack scores.
FINITE_COLUMNS: dict[str, tuple[str, ...]] = {
    "model": ("values",),
    "outputs": ("prob", "z"),
    "hw_outputs": ("prob", "z"),
    "hw_draws": ("prob", "z"),
    "mia_scores": ("score",),
    "hw_scores": ("score",),
    "distribution": ("prob",),
}


def non_finite(frame: pd.DataFrame, stage: str) -> str | None:
    """What is not finite in `frame`'s `FINITE_COLUMNS`, or None."""
    for column in FINITE_COLUMNS.get(stage, ()):
        if column not in frame.columns or frame.empty:
            continue
        values = frame[column]
        try:
            if values.dtype == object:  # list cells: one flat array
                flat = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
            else:
                flat = np.asarray(values, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return f"column {column!r} holds values that are not numbers"
        bad = ~np.isfinite(flat)
        if bad.any():
            rows = [int(i) for i, v in enumerate(values) if not np.isfinite(np.asarray(v, dtype=np.float64)).all()]
            return (
                f"column {column!r} holds {int(bad.sum())} non-finite value(s) (NaN or infinite, "
                f"e.g. {float(flat[bad][0])}) in {len(rows)} row(s), first row {rows[0]}"
            )
    return None


def _check_finite(frame: pd.DataFrame, stage: str, key: str) -> None:
    why = non_finite(frame, stage)
    if why is not None:
        raise ArtifactError(
            f"Stage {stage!r} produced values that are not finite for {key}: {why}. Nothing was written "
            "or sealed. Its inputs (weights, outputs) are not usable: check them, or rerun with "
            "`qmu run --refresh` to rebuild them."
        )
