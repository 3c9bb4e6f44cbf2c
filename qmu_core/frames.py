"""Frames <-> arrays: the one home of the conversions between long Parquet rows and NumPy.

Artifacts keep vectors as list-valued cells (``x``, ``pixels``, ``prob``) and tensors as
``(name, shape, values)`` rows with the values flattened in C order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from qmu_core.errors import ConfigError

__all__ = ["array", "arrays", "class_index", "stack", "tensor_rows"]


def stack(column: pd.Series, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """A list-valued column as a 2-D array ``(rows, width)``."""
    return np.stack(list(column.to_numpy())).astype(dtype)


def array(values: Iterable[float], shape: Sequence[int], dtype: npt.DTypeLike = np.float64) -> np.ndarray:
    """One flattened tensor cell back in its shape."""
    return np.asarray(values, dtype=dtype).reshape([int(s) for s in shape])


def arrays(frame: pd.DataFrame, name: str = "variable", dtype: npt.DTypeLike = np.float64) -> dict[str, np.ndarray]:
    """Every ``(name, shape, values)`` row of `frame` as ``{name: array}``."""
    return {str(n): array(v, s, dtype) for n, s, v in zip(frame[name], frame["shape"], frame["values"], strict=True)}


def tensor_rows(tensors: Mapping[str, Any], name: str = "variable", dtype: npt.DTypeLike = np.float64) -> pd.DataFrame:
    """``{name: array}`` as ``(name, shape, values)`` rows, in the mapping's order."""
    items = [(k, np.asarray(v)) for k, v in tensors.items()]
    return pd.DataFrame(
        {
            name: [k for k, _ in items],
            "shape": [list(a.shape) for _, a in items],
            "values": [a.astype(dtype).ravel() for _, a in items],
        }
    )


def class_index(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Map dataset labels to head indices (position in `classes`), int32."""
    lookup = {int(c): i for i, c in enumerate(classes)}
    unknown = sorted({int(v) for v in labels} - set(lookup))
    if unknown:
        raise ConfigError(f"Labels {unknown} are not among the model's classes {list(classes)}.")
    return np.array([lookup[int(v)] for v in labels], dtype=np.int32)
