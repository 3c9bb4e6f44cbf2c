"""The training records of a model trained outside QMU (``data.members``).

A model the user trained with their own code is audited on the records it trained on: their
``sample_id`` s (dataset indices, as QMU numbers records: the row of a table, the index of an
image), listed in a file that ``data.members`` names:

* ``.txt``: one id per line (blank lines and ``#`` comments skipped);
* ``.csv`` or ``.parquet``: a ``sample_id`` column (a CSV without a header: one id per line);
* ``.npy``: a 1-d integer array; ``.npz``: an integer array ``ids``.

The split (`qmu_core.splits.split_roles`) then makes exactly these records the target's training
set and draws the held-out, shadow-pool and test records from the rest. The file's content enters
the split's key (`members_fingerprint`). Every malformed file fails before any work with a
`DataError` naming the file, the problem and the fix.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from qmu_core.errors import DataError

__all__ = ["MEMBER_FORMATS", "members_fingerprint", "read_member_ids"]

MEMBER_FORMATS = (".txt", ".csv", ".parquet", ".npy", ".npz")
"""File types ``data.members`` may name."""


def read_member_ids(path: str | Path) -> np.ndarray:
    """The sample_ids listed in `path` (int64, in file order).

    Raises:
        DataError: If the file is missing, of another type, unreadable, empty, or lists ids that are
            not whole non-negative numbers or repeats one.
    """
    where = Path(path).expanduser()
    fix = "List each training record's sample_id once (docs/data.md, 'Models trained elsewhere')."
    if where.suffix.lower() not in MEMBER_FORMATS:
        raise DataError(
            f"data.members={str(path)!r}: a {where.suffix or 'suffix-less'} file is not a member list; "
            f"use one of {', '.join(MEMBER_FORMATS)}. {fix}"
        )
    if not where.is_file():
        raise DataError(
            f"data.members={str(path)!r}: no such file. Pass the file listing the model's training records."
        )
    try:
        raw = _read(where)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error: a parser's error names the format problem; say which file
        raise DataError(f"data.members={str(path)!r} could not be read ({type(exc).__name__}: {exc}). {fix}") from None
    values = np.asarray(raw).reshape(-1)
    if values.size == 0:
        raise DataError(
            f"data.members={str(path)!r} lists no sample_id: the model must have trained on something. {fix}"
        )
    numbers = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64)
    bad = [str(values[i]) for i in np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))[:5]]
    if bad:
        raise DataError(
            f"data.members={str(path)!r} has entries that are not whole numbers ({', '.join(bad)}); sample_ids are "
            f"dataset indices 0, 1, 2, ... {fix}"
        )
    ids = numbers.astype(np.int64)
    if np.any(ids < 0):
        raise DataError(f"data.members={str(path)!r} has negative sample_ids ({ids[ids < 0][:5].tolist()}). {fix}")
    repeated = sorted(i for i, n in Counter(ids.tolist()).items() if n > 1)
    if repeated:
        raise DataError(f"data.members={str(path)!r} repeats sample_ids {repeated[:10]}. {fix}")
    return ids


def _read(where: Path) -> np.ndarray:
    suffix = where.suffix.lower()
    if suffix == ".npy":
        return np.load(where, allow_pickle=False)
    if suffix == ".npz":
        with np.load(where, allow_pickle=False) as z:
            if "ids" not in z.files:
                raise DataError(
                    f"data.members={str(where)!r} has arrays {z.files} but no `ids`; save it with "
                    "np.savez(path, ids=...)."
                )
            return z["ids"]
    if suffix == ".parquet":
        frame = pd.read_parquet(where)
        return _id_column(frame, where, f"columns {list(frame.columns)[:10]}", "name the id column sample_id.")
    lines = [ln.split("#", 1)[0].strip() for ln in where.read_text().splitlines()]
    lines = [ln for ln in lines if ln]
    if suffix == ".csv" and lines and not _is_number(lines[0].split(",")[0]):
        frame = pd.read_csv(where)
        fix = "name the id column sample_id, or write one id per line without a header."
        return _id_column(frame, where, f"a header {list(frame.columns)[:10]}", fix)
    if suffix == ".csv":
        lines = [ln.split(",")[0].strip() for ln in lines]
    return np.asarray(lines, dtype=object)


def _id_column(frame: pd.DataFrame, where: Path, found: str, fix: str) -> np.ndarray:
    """The ``sample_id`` column of a member table, or a `DataError` saying what the file has instead."""
    if "sample_id" not in frame.columns:
        raise DataError(f"data.members={str(where)!r} has {found} without `sample_id`; {fix}")
    return frame["sample_id"].to_numpy()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def members_fingerprint(path: str | Path) -> str:
    """The member list by content (the sorted ids), for the split's key.

    The same ids in another file make the same split.
    """
    ids = np.sort(read_member_ids(path))
    return "members:" + hashlib.sha256(",".join(map(str, ids.tolist())).encode()).hexdigest()[:16]
