"""The example's own dataset: noisy 4x4 bars, four classes named by text (``make_bars``).

Each record is a 4x4 image: one bright line (a row, a column, the diagonal or the anti-diagonal)
on a dark background, with Gaussian noise, clipped to [0, 1]. Its label is the line's kind as
text (``horizontal``, ``vertical``, ``diagonal``, ``anti_diagonal``), so QMU numbers the labels in
sorted order (``anti_diagonal`` = 0, ``diagonal`` = 1, ``horizontal`` = 2, ``vertical`` = 3) and
records that mapping in the split's facts.

The package ships the table it makes with the default arguments as ``data/bars.csv`` (`SHIPPED`):
a label column and an ``image`` column of 16 numbers separated by spaces, as ``data.dataset: file``
reads a CSV. ``python -m qmu_reupload_plugin.bars OUT.csv [--per-class N] [--seed S]`` writes another.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["KINDS", "SHIPPED", "bars", "make_bars"]

KINDS = ("horizontal", "vertical", "diagonal", "anti_diagonal")
SHIPPED = Path(__file__).with_name("data") / "bars.csv"
"""The table `make_bars` writes with its defaults, shipped with the package."""


def bars(per_class: int = 150, *, side: int = 4, noise: float = 0.25, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``per_class`` images of each kind: ``(N, side, side)`` in [0, 1], and their labels (text), shuffled."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for kind in KINDS:
        for _ in range(per_class):
            img = np.zeros((side, side))
            k = int(rng.integers(side))
            if kind == "horizontal":
                img[k, :] = 1.0
            elif kind == "vertical":
                img[:, k] = 1.0
            elif kind == "diagonal":
                img[np.arange(side), np.arange(side)] = 1.0
            else:
                img[np.arange(side), side - 1 - np.arange(side)] = 1.0
            images.append(np.clip(img + rng.normal(0.0, noise, img.shape), 0.0, 1.0))
            labels.append(kind)
    order = rng.permutation(len(labels))
    return np.stack(images)[order], [labels[i] for i in order]


def make_bars(path: str | Path, per_class: int = 150, *, seed: int = 0) -> Path:
    """Write `bars` as a CSV (``label``, ``image``: 16 numbers separated by spaces, 3 decimals); returns the path."""
    images, labels = bars(per_class, seed=seed)
    lines = ["label,image"]
    lines += [f"{lab}," + " ".join(f"{v:.3f}" for v in img.ravel()) for img, lab in zip(images, labels, strict=True)]
    out = Path(path)
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    """``python -m qmu_reupload_plugin.bars OUT.csv``: write a bars table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    print(make_bars(a.out, a.per_class, seed=a.seed))


if __name__ == "__main__":
    main()
