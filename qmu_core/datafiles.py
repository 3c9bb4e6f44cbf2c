"""Datasets from the user's own files (``data.dataset=file``, ``data.path``).

What ``data.path`` names decides how it is read:

* a ``.parquet`` or ``.csv`` table: one label column (``data.label_column``) and either one image
  column (cells of ``h*w`` numbers: lists in Parquet; a JSON list or numbers separated by spaces
  in CSV) or feature columns (every other column, numbers);
* an ``.npz`` with arrays ``x`` (``(N, d)`` features or ``(N, h, w)`` images) and ``y`` (labels);
* an IDX images file (``<prefix>images-idx3-ubyte[.gz]``, e.g. Fashion-MNIST or EMNIST) with its
  labels file beside it (the same name with ``labels-idx1``), or a folder holding such pairs;
* a folder with one subfolder of images (PNG, JPEG, BMP, GIF, TIFF) per class, named by its label.

The result is a `datasets.Dataset`: square images in [0, 1] and integer labels. Images with
values in [0, 255] are divided by 255. Features are scaled per column to [0, 1] over the file
(min-max; a constant column becomes 0) and zero-padded to the next square, so every model reads
them the same way as pixels. Integer labels (or whole-number floats) are kept. Text labels are
numbered in sorted order (0, 1, ...); ``data.classes`` and ``data.forget_class`` then use those
numbers, and the mapping is recorded in the split's facts (``label_names``).

Every malformed file fails here, before any model trains, with a `DataError` naming the file,
the problem and the fix: a missing label column, ragged rows, NaN or infinite values, a single
class, labels that mix text and numbers or are fractional, images of mixed sizes.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qmu_core.artifacts import sha256_file
from qmu_core.errors import DataError
from qmu_core.imagesets import Dataset, read_idx

__all__ = ["FILE_HELP", "file_fingerprint", "load_file"]

FILE_HELP = (
    "data.dataset=file reads data.path: a .parquet or .csv table (a label column plus an image column or "
    "feature columns), an .npz with arrays x and y, an IDX images file with its labels file beside it (or a "
    "folder of such pairs), or a folder with one subfolder of images per class. docs/data.md has the details."
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def _error(path: Path | str, problem: str, fix: str) -> DataError:
    return DataError(f"data.path={str(path)!r}: {problem}. {fix}")


def _where(path: str | None) -> Path:
    if not path:
        raise DataError(f"data.dataset=file needs data.path, the file or folder to read. {FILE_HELP}")
    where = Path(path).expanduser()
    if not where.exists():
        raise _error(path, "does not exist", "Check the path; it is read on the machine that runs the flow.")
    return where


def _files(where: Path) -> list[Path]:
    """The files a path reads: itself, its IDX pair, or every file below a folder (sorted)."""
    if where.is_file():
        pair = _labels_beside(where) if _is_idx_images(where) else None
        return [where] + ([pair] if pair is not None else [])
    return sorted(p for p in where.rglob("*") if p.is_file() and not p.name.startswith("."))


def file_fingerprint(path: str | None, label_column: str) -> str:
    """SHA-256 over the names and bytes of what `path` reads (and the label column): the split's key."""
    where = _where(path)
    base = where if where.is_dir() else where.parent
    listing = "\n".join(f"{f.relative_to(base)} {sha256_file(f)}" for f in _files(where))
    digest = hashlib.sha256((label_column + "\n" + listing).encode()).hexdigest()
    return f"file:{digest[:16]}"


def load_file(path: str | None, label_column: str = "label") -> Dataset:
    """The `Dataset` in `path` (module doc), or a `DataError` saying what is wrong with it and how to fix it."""
    where = _where(path)
    if where.is_dir():
        idx = sorted(p for p in where.iterdir() if _is_idx_images(p))
        if idx:
            return _from_idx(idx)
        return _from_image_folder(where)
    suffix = "".join(where.suffixes[-2:]) if where.suffix == ".gz" else where.suffix
    if _is_idx_images(where):
        return _from_idx([where])
    if suffix.lower() in (".parquet", ".pq", ".csv", ".csv.gz"):
        return _from_table(where, label_column)
    if suffix.lower() == ".npz":
        return _from_npz(where)
    raise _error(where, f"has a suffix QMU does not read ({suffix or 'none'})", FILE_HELP)


# --- labels -------------------------------------------------------------------------------------


def _labels(
    values: Any, where: Path, what: str, rows: str = "records", offset: int = 0
) -> tuple[np.ndarray, dict[int, str] | None]:
    """Integer labels from `values`, numbering text labels in sorted order (their names returned).

    Bad records are named as `rows` ``index + offset`` (a CSV's line numbers).
    """
    raw = pd.Series(np.asarray(values, dtype=object).ravel())
    missing = np.flatnonzero(raw.isna().to_numpy())
    if len(missing):
        raise _error(
            where,
            f"{what} is empty in {len(missing)} {rows} ({_first(missing, offset)})",
            "Give every record a label, or drop the unlabelled ones.",
        )
    kinds = {"number" if not isinstance(v, str | bytes) or _numeric(v) else "text" for v in raw}
    if kinds == {"text", "number"}:
        text = next(v for v in raw if isinstance(v, str | bytes) and not _numeric(v))
        number = next(v for v in raw if not isinstance(v, str | bytes) or _numeric(v))
        raise _error(
            where,
            f"{what} mixes text and numbers (e.g. {text!r} and {number!r})",
            "Use one kind of label: all whole numbers (0, 1, 2, ...) or all names.",
        )
    if kinds == {"text"}:
        names = sorted({str(v) for v in raw})
        code = {n: i for i, n in enumerate(names)}
        labels = np.asarray([code[str(v)] for v in raw], dtype=np.int64)
        return _enough_classes(labels, where, what), dict(enumerate(names))
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(numbers) | (numbers != np.round(numbers)))
    if len(bad):
        raise _error(
            where,
            f"{what} has {len(bad)} labels that are not whole numbers (e.g. {raw.iloc[bad[0]]!r}, "
            f"{rows} {_first(bad, offset)})",
            "Class labels are whole numbers (0, 1, 2, ...) or names; a fractional value looks like a regression "
            "target, not a class: bin it into classes, or pick the right label column (data.label_column).",
        )
    labels = numbers.astype(np.int64)
    if labels.min() < 0:
        raise _error(
            where,
            f"{what} has negative labels (e.g. {int(labels.min())})",
            "Renumber the classes 0, 1, 2, ..., or write them as names.",
        )
    return _enough_classes(labels, where, what), None


def _numeric(value: str | bytes) -> bool:
    """Text that reads as a number ("3", "3.0"), as a CSV column mixing numbers and names holds them."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def _enough_classes(labels: np.ndarray, where: Path, what: str) -> np.ndarray:
    found = np.unique(labels)
    if len(found) < 2:
        raise _error(
            where,
            f"{what} has one class only ({found[0] if len(found) else 'none'}, {len(labels)} records)",
            "A classifier and a class deletion request need at least two classes: add records of other classes.",
        )
    return labels


def _first(indices: np.ndarray, offset: int = 0) -> str:
    shown = ", ".join(str(int(i) + offset) for i in indices[:5])
    return shown + (", ..." if len(indices) > 5 else "")


# --- values -------------------------------------------------------------------------------------


def _finite(values: np.ndarray, where: Path, rows: str, offset: int = 0) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if len(bad):
        raise _error(
            where,
            f"{len(bad)} of {len(flat)} records have NaN, empty or infinite values ({rows} {_first(bad, offset)})",
            "Repair or drop those records.",
        )
    return values


def _as_images(values: np.ndarray, where: Path) -> np.ndarray:
    """(N, h, w) numbers as float32 in [0, 1]: kept if in [0, 1], divided by 255 if in [0, 255]."""
    if values.ndim != 3 or values.shape[1] != values.shape[2]:
        shape = "x".join(str(d) for d in values.shape[1:])
        raise _error(
            where,
            f"holds {shape} images; QMU needs square images",
            "Pad or resize them to a square (e.g. 28x28).",
        )
    lo, hi = float(values.min()), float(values.max())
    if lo < 0 or hi > 255:
        raise _error(
            where,
            f"has pixel values from {lo:g} to {hi:g}",
            "Pixels must lie in [0, 1] or [0, 255]; rescale them, or give them as feature columns (min-max scaled).",
        )
    scale = 255.0 if hi > 1 else 1.0
    return (values.astype(np.float64) / scale).astype(np.float32)


def _features_as_images(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(N, d) features min-max scaled per column to [0, 1], zero-padded to (N, s, s) with s*s >= d."""
    x = x.astype(np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = (x - lo) / span
    side = max(1, math.isqrt(x.shape[1] - 1) + 1) if x.shape[1] > 1 else 1
    out = np.zeros((len(x), side * side), dtype=np.float32)
    out[:, : x.shape[1]] = scaled
    return out.reshape(len(x), side, side), side


def _dataset(
    values: np.ndarray, labels: np.ndarray, names: dict[int, str] | None, where: Path, source: str, features: bool
) -> Dataset:
    if len(values) != len(labels):
        raise _error(
            where,
            f"has {len(values)} records but {len(labels)} labels",
            "Every record needs exactly one label.",
        )
    if features:
        images, side = _features_as_images(values)
        source += f": {values.shape[1]} features, min-max scaled, as {side}x{side} images"
    else:
        images = _as_images(values, where)
    return Dataset(images, labels, source, label_names=names)


# --- tables -------------------------------------------------------------------------------------


def _read_table(where: Path) -> pd.DataFrame:
    try:
        if where.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(where)
        return pd.read_csv(where)
    except pd.errors.ParserError as exc:
        raise _error(
            where,
            f"has ragged rows ({str(exc).strip()})",
            "Every row needs the same number of fields as the header: fix or drop the rows it names.",
        ) from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise _error(where, f"cannot be read as a table ({type(exc).__name__}: {exc})", FILE_HELP) from None


def _cell(value: Any) -> np.ndarray | None:
    """An image cell's numbers (a list or array; text as a JSON list or numbers split by spaces), else None."""
    if isinstance(value, list | tuple | np.ndarray):
        return np.asarray(value, dtype=np.float64).ravel()
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = json.loads(text) if text.startswith("[") else [float(t) for t in text.replace(",", " ").split()]
        except ValueError:
            return None
        return np.asarray(parsed, dtype=np.float64).ravel() if len(parsed) > 1 else None
    return None


def _from_table(where: Path, label_column: str) -> Dataset:
    frame = _read_table(where)
    offset = 2 if where.suffix.lower() in (".csv", ".gz") else 0  # CSV: file line numbers (header is line 1)
    rows = "lines" if offset else "rows"
    if label_column not in frame.columns:
        raise _error(
            where,
            f"has no label column {label_column!r} (its columns: {', '.join(map(str, frame.columns[:12]))}"
            + (", ..." if len(frame.columns) > 12 else "")
            + ")",
            "Name the column that holds the classes with data.label_column (form: the data section's Label Column; "
            "CLI: --set data.label_column=NAME).",
        )
    if len(frame) == 0:
        raise _error(where, "has no rows", "Give it one row per record.")
    labels, names = _labels(frame[label_column].to_numpy(), where, f"label column {label_column!r}", rows, offset)
    others = frame.drop(columns=[label_column])
    cells = {c: [_cell(v) for v in others[c]] for c in others.columns if others[c].dtype == object}
    images = [c for c, parsed in cells.items() if any(p is not None for p in parsed)]
    if len(images) > 1 or (images and len(others.columns) > 1):
        rest = ", ".join(str(c) for c in others if c != images[0])
        raise _error(
            where,
            f"has an image column {images[0]!r} and other columns ({rest})",
            "Keep the label column and either one image column or feature columns only.",
        )
    if images:
        parsed = cells[images[0]]
        empty = np.flatnonzero([p is None for p in parsed])
        if len(empty):
            raise _error(where, f"image column {images[0]!r} is empty or not numbers in {rows} "
                         f"{_first(empty, offset)}", "Give every record its pixels.")  # fmt: skip
        sizes = sorted({len(p) for p in parsed if p is not None})
        if len(sizes) > 1:
            raise _error(
                where,
                f"image column {images[0]!r} has images of mixed sizes ({', '.join(map(str, sizes[:6]))} values)",
                "Every image needs the same size: resize them to one square size.",
            )
        side = math.isqrt(sizes[0])
        if side * side != sizes[0]:
            raise _error(
                where,
                f"image column {images[0]!r} has {sizes[0]} values per image, not a square (side x side)",
                "Give square images flattened row by row, or give the values as feature columns.",
            )
        stacked = np.stack([p for p in parsed if p is not None])
        values = _finite(stacked.reshape(len(parsed), side, side), where, rows, offset)
        return _dataset(values, labels, names, where, f"file {where.name}", features=False)
    text = [c for c in others.columns if not pd.api.types.is_numeric_dtype(others[c])]
    if text:
        raise _error(
            where,
            f"has columns that are not numbers: {', '.join(map(str, text[:6]))}",
            "Every column besides the label is a feature and must hold numbers: drop or encode those columns.",
        )
    if others.shape[1] == 0:
        raise _error(where, "has a label column only", "Add feature columns or an image column.")
    values = _finite(others.to_numpy(dtype=np.float64), where, rows, offset)
    return _dataset(values, labels, names, where, f"file {where.name}", features=True)


# --- arrays, IDX, image folders --------------------------------------------------------------------


def _from_npz(where: Path) -> Dataset:
    try:
        with np.load(where, allow_pickle=False) as f:
            missing = [k for k in ("x", "y") if k not in f.files]
            if missing:
                raise _error(
                    where,
                    f"has no array {' or '.join(missing)} (its arrays: {', '.join(f.files) or 'none'})",
                    "Save the records as x ((N, d) features or (N, h, w) images) and the labels as y: "
                    "numpy.savez(path, x=x, y=y).",
                )
            x, y = f["x"], f["y"]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise _error(
                where,
                "holds object arrays (ragged records or mixed types)",
                "Save x as one numeric array of equal-length records, and y as numbers or strings.",
            ) from None
        raise _error(where, f"cannot be read as an .npz ({exc})", FILE_HELP) from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise _error(where, f"cannot be read as an .npz ({type(exc).__name__}: {exc})", FILE_HELP) from None
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim not in (2, 3) or not np.issubdtype(x.dtype, np.number):
        raise _error(
            where,
            f"has x of shape {x.shape} and type {x.dtype}",
            "x must be numbers: (N, d) features or (N, h, w) images.",
        )
    labels, names = _labels(y, where, "array y")
    values = _finite(x.astype(np.float64), where, "records")
    return _dataset(values, labels, names, where, f"file {where.name}", features=x.ndim == 2)


def _is_idx_images(path: Path) -> bool:
    return path.is_file() and "images-idx3" in path.name or (path.is_file() and "images.idx3" in path.name)


def _labels_beside(images: Path) -> Path | None:
    for a, b in (("images-idx3", "labels-idx1"), ("images.idx3", "labels.idx1")):
        if a in images.name:
            candidates = [images.with_name(images.name.replace(a, b))]
            candidates += [c.with_suffix("") if c.suffix == ".gz" else c.with_name(c.name + ".gz") for c in candidates]
            return next((c for c in candidates if c.is_file()), None)
    return None


def _from_idx(images_files: list[Path]) -> Dataset:
    xs, ys, parts = [], [], []
    for images in images_files:
        labels_file = _labels_beside(images)
        if labels_file is None:
            raise _error(
                images,
                "is an IDX images file without its labels file beside it "
                f"({images.name.replace('images-idx3', 'labels-idx1')})",
                "Put the matching labels file in the same folder.",
            )
        x, y = read_idx(images, "images"), read_idx(labels_file, "labels")
        if len(x) != len(y):
            raise _error(
                images,
                f"holds {len(x)} images but {labels_file.name} holds {len(y)} labels",
                "Use an images/labels pair from the same release.",
            )
        xs.append(x)
        ys.append(y)
        parts.append(f"{images.name} ({len(y)})")
    sizes = sorted({x.shape[1:] for x in xs})
    if len(sizes) > 1:
        raise _error(
            images_files[0].parent,
            f"holds IDX images of mixed sizes {sizes}",
            "Keep one dataset's files in a folder.",
        )
    where = images_files[0] if len(images_files) == 1 else images_files[0].parent
    labels, _ = _labels(np.concatenate(ys), where, "the labels file")
    images_ = (np.concatenate(xs).astype(np.float32) / 255.0).astype(np.float32)
    return Dataset(images_, labels, "idx " + ", ".join(parts))


def _from_image_folder(where: Path) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p for p in where.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise _error(where, "is a folder without class subfolders or IDX files", FILE_HELP)
    pixels: list[np.ndarray] = []
    names: list[str] = []
    first: dict[tuple[int, ...], Path] = {}
    for folder in classes:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise _error(
                folder,
                f"(class {folder.name!r}) holds no images ({', '.join(IMAGE_SUFFIXES)})",
                "Put the class's images in it, or remove the empty folder.",
            )
        for f in files:
            try:
                with Image.open(f) as img:
                    array = np.asarray(img.convert("L"), dtype=np.float64)
            except (OSError, UnidentifiedImageError) as exc:
                raise _error(f, f"is not a readable image ({exc})", "Replace or remove it.") from None
            first.setdefault(array.shape, f)
            if len(first) > 1:
                (s1, f1), (s2, f2) = list(first.items())[:2]
                raise _error(
                    where,
                    f"holds images of mixed sizes: {f1.relative_to(where)} is {s1[1]}x{s1[0]}, "
                    f"{f2.relative_to(where)} is {s2[1]}x{s2[0]}",
                    "Resize every image to one square size.",
                )
            pixels.append(array)
            names.append(folder.name)
    named = all(n.isdigit() for n in names)
    labels, mapping = _labels([int(n) for n in names] if named else names, where, "the class subfolders")
    source = f"image folder {where.name} ({len(classes)} classes, {len(names)} images)"
    return _dataset(np.stack(pixels), labels, mapping, where, source, features=False)
