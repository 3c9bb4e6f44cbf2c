"""What every dataset becomes (`Dataset`: square images in [0, 1], integer labels) and the IDX reader.

Shared by the built-in datasets (`qmu_core.datasets`) and the user's files (`qmu_core.datafiles`).
"""

from __future__ import annotations

import functools
import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmu_core.errors import DataError

__all__ = ["Dataset", "read_idx"]


@dataclass(frozen=True)
class Dataset:
    """Images as floats in [0, 1], their labels and a description of the source."""

    images: np.ndarray  # (N, side, side) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    source: str
    label_names: dict[int, str] | None = None  # a file's own labels, when they are not integers

    @property
    def side(self) -> int:
        """Image height (= width)."""
        return int(self.images.shape[1])


# IDX files hold either images (N x rows x cols) or labels (N).
_IDX_NDIM = {"images": 3, "labels": 1}


def _bad_file(
    path: Path,
    why: str,
    fix: str = "Replace it with an intact copy of the original file.",
    *,
    what: str,
    help_text: str,
) -> DataError:
    return DataError(f"{what} {path} {why}. {fix}" + (f"\n{help_text}" if help_text else ""))


def read_idx(path: Path, kind: str, *, what: str = "IDX file", help_text: str = "") -> np.ndarray:
    """Read an IDX file holding `kind` (``images`` or ``labels``), gzipped or not.

    Errors call the file `what` and end with `help_text` (MNIST's: how to get it).
    """
    bad = functools.partial(_bad_file, what=what, help_text=help_text)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if str(exc).startswith("Not a gzipped file"):
            raise bad(path, f"is not a gzip file ({exc})") from None
        raise bad(path, f"is a truncated or corrupt gzip file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc})") from None
    if len(raw) < 4:
        raise bad(path, f"is too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise bad(path, f"is not an unsigned-byte IDX file (header {raw[:4].hex()}; expected 0000080{_IDX_NDIM[kind]})")
    want = _IDX_NDIM[kind]
    if ndim != want:
        other = next(k for k, n in _IDX_NDIM.items() if n == ndim) if ndim in _IDX_NDIM.values() else None
        raise bad(
            path,
            f"holds {ndim}-dimensional data, but an IDX {kind} file holds {want}"
            + (f" (it looks like a {other} file)" if other else ""),
            "Check that the images and labels files are not swapped or misnamed "
            "(`*-images-idx3-ubyte*` holds images, `*-labels-idx1-ubyte*` labels), or replace the file "
            "with an intact copy.",
        )
    if len(raw) < 4 + 4 * ndim:
        raise bad(path, f"is truncated inside its header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        what = "is truncated" if data.size < int(np.prod(dims)) else "has trailing bytes"
        raise bad(path, f"{what}: its header says {dims} = {int(np.prod(dims))} values, found {data.size}")
    if kind == "images" and dims[1] != dims[2]:
        raise bad(path, f"holds {dims[1]}x{dims[2]} images; QMU needs square images")
    return data.reshape(dims)
