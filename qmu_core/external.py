"""Weights of a model trained outside QMU, read into a `model` artifact (`qmu audit --weights`).

The file holds one entry per variable of the architecture the config names (a preset's model or
a plug-in, `qmu_core.config.ModelConfig`):

* each circuit weight under its **symbol name** (a scalar; e.g. ``w_0_1_2`` for the built-in
  ansatz, whatever the plug-in's circuit calls them);
* the dense head as ``head_w`` (``(read-outs, classes)``: ``logits = z @ head_w + head_b``, where
  ``z`` holds one expectation per read-out observable, in the circuit's order) and ``head_b``
  (``(classes,)``); an HQNN's front end under its variable names (`expected_names`).

As an ``.npz`` (``np.savez(path, **weights)``), or a Parquet table with columns ``name`` and
``values`` (a number or a list; an optional ``shape`` column gives its shape). Every problem (a
missing or unexpected name, a wrong shape, a NaN) fails before any model trains, naming the file,
the entries and the fix. Nothing here imports TensorFlow or Cirq: ``qmu_core.jobs.import_weights_split``
(in a worker process) builds the model and checks the file against it with `as_variables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from qmu_core.artifacts import sha256_file
from qmu_core.errors import DataError
from qmu_core.provenance import ModelFacts

if TYPE_CHECKING:
    from qmu_core.config import QMUConfig

__all__ = [
    "EXTERNAL",
    "RETRAINED",
    "WEIGHT_FORMATS",
    "as_variables",
    "check_external",
    "expected_names",
    "external_facts",
    "read_weights",
]

EXTERNAL = "external"
"""The model id (and the report's phase) of a model trained outside QMU."""

RETRAINED = "qmu_retrained"
"""The report's phase of QMU's own training of that model on the same records with its recipe (the recipe check)."""

WEIGHT_FORMATS = (".npz", ".parquet")
"""File types `read_weights` reads."""

_FIX = "Save one entry per symbol name and head_w / head_b (docs/data.md, 'Models trained elsewhere')."


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """``{name: float64 array}`` from an ``.npz`` or a Parquet weights file.

    Raises:
        DataError: If the file is missing, of another type, unreadable, or holds non-numeric or
            non-finite values.
    """
    where = Path(path).expanduser()
    if where.suffix.lower() not in WEIGHT_FORMATS:
        raise DataError(
            f"Weights file {str(path)!r}: use an .npz or a .parquet file, not {where.suffix or 'no suffix'}. {_FIX}"
        )
    if not where.is_file():
        raise DataError(f"Weights file {str(path)!r} does not exist; pass the file your training code saved.")
    try:
        found = _read_npz(where) if where.suffix.lower() == ".npz" else _read_parquet(where)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader error: the reader's own words, with the file's name
        raise DataError(f"Weights file {str(path)!r} could not be read ({type(exc).__name__}: {exc}). {_FIX}") from None
    if not found:
        raise DataError(f"Weights file {str(path)!r} holds no entries. {_FIX}")
    bad = [k for k, v in found.items() if not np.all(np.isfinite(v))]
    if bad:
        raise DataError(
            f"Weights file {str(path)!r}: entries {bad[:8]} hold NaN or infinite values; retrain or fix them."
        )
    return found


def _read_npz(where: Path) -> dict[str, np.ndarray]:
    out = {}
    with np.load(where, allow_pickle=False) as z:
        for name in z.files:
            value = z[name]
            if not np.issubdtype(value.dtype, np.number):
                raise DataError(f"Weights file {str(where)!r}: entry {name!r} is {value.dtype}, not numbers. {_FIX}")
            out[name] = value.astype(np.float64)
    return out


def _read_parquet(where: Path) -> dict[str, np.ndarray]:
    frame = pd.read_parquet(where)
    missing = [c for c in ("name", "values") if c not in frame.columns]
    if missing:
        raise DataError(
            f"Weights file {str(where)!r} has columns {list(frame.columns)[:8]} but not {missing}; a Parquet weights "
            f"table has `name` and `values` (and optionally `shape`). {_FIX}"
        )
    repeated = frame["name"][frame["name"].duplicated()].tolist()
    if repeated:
        raise DataError(f"Weights file {str(where)!r} repeats names {repeated[:8]}; give each variable one row.")
    out = {}
    for i, row in frame.iterrows():
        value = np.asarray(row["values"], dtype=np.float64)
        if "shape" in frame.columns and row["shape"] is not None:
            value = value.reshape([int(d) for d in row["shape"]])
        out[str(row["name"]) if row["name"] is not None else f"<row {i}>"] = value
    return out


def check_external(config: QMUConfig, weights: str) -> str:
    """The SHA-256 of `weights` once it and ``data.members`` are readable.

    Raises:
        DataError: If either is missing or malformed (one message naming the file and the fix).
    """
    if not config.data.members:
        raise DataError(
            "An external model is audited on the records it trained on: set data.members to a file of their "
            "sample_ids (qmu audit --members ids.txt; docs/data.md, 'Models trained elsewhere')."
        )
    if not weights.strip():
        raise DataError("Which weights? Set `weights` to the .npz or .parquet file your training code saved.")
    from qmu_core.datasets import fingerprint

    fingerprint(config.data)  # reads data.members: a malformed list fails here, before any work
    read_weights(weights)
    return sha256_file(Path(weights).expanduser())


def expected_names(
    weight_symbols: Sequence[object], variables: dict[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Every entry a weights file must hold, with its shape: the symbols (scalars), then the classical variables."""
    names: dict[str, tuple[int, ...]] = {str(s): () for s in weight_symbols}
    names |= {k: shape for k, shape in variables.items() if k != "theta"}
    return names


def as_variables(
    given: dict[str, np.ndarray], symbols: list[str], shapes: dict[str, tuple[int, ...]], path: str
) -> dict[str, np.ndarray]:
    """`given` ({name: array}) as the model's variables (``theta`` in symbol order); every problem in one message."""
    expected = expected_names(symbols, shapes)
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    wrong = {
        k: (tuple(given[k].shape), want)
        for k, want in expected.items()
        if k in given and given[k].size != int(np.prod(want, dtype=np.int64))
    }
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {missing[:8]}" + (" ..." if len(missing) > 8 else ""))
        if extra:
            parts.append(f"not in this model {len(extra)}: {extra[:8]}" + (" ..." if len(extra) > 8 else ""))
        if wrong:
            parts.append(
                "wrong shapes: " + ", ".join(f"{k} {g} (expected {w})" for k, (g, w) in list(wrong.items())[:6])
            )
        raise DataError(
            f"Weights file {path!r} does not fit the model the config names: " + "; ".join(parts) + ". The model's "
            f"entries are its {len(symbols)} circuit symbols (e.g. {symbols[:3]}) and "
            f"{', '.join(f'{k} {v}' for k, v in shapes.items() if k != 'theta')}. Check model.kind, n_qubits, "
            "layers and data.classes against the model you trained, and save every entry by these names."
        )
    out = {k: np.asarray(given[k]).reshape(v) for k, v in shapes.items() if k != "theta"}
    out["theta"] = np.array([float(np.asarray(given[s]).reshape(())) for s in symbols])
    return out


def external_facts(splits: pd.DataFrame, path: str, sha256: str) -> ModelFacts:
    """The facts of the imported model: trained outside QMU, on the split's ``target_train`` records, from `path`.

    Raises:
        DataError: If the file changed since the run was planned (its content is no longer `sha256`).
    """
    now = sha256_file(Path(path).expanduser())
    if now != sha256:
        raise DataError(
            f"Weights file {path!r} changed while the run started (SHA-256 {sha256[:12]} -> {now[:12]}); rerun."
        )
    return ModelFacts(
        which=EXTERNAL,
        n_train=int((splits["role"] == "target_train").sum()),
        note=f"trained outside QMU, weights read from {Path(path).name} (SHA-256 {sha256[:12]})",
    )
