"""Scaling curves: how QMU's cost grows with qubits, layers, training records, reference models and shots.

    python bench/scaling.py                        # every axis (about 5 minutes on 2 cores)
    python bench/scaling.py --axes qubits,shots    # some axes
    python bench/scaling.py --quick                # the smallest sizes of each axis: a minute or two
    python bench/scaling.py --replot               # redraw the PNGs from the JSON files

Each point runs in a fresh subprocess, so its ``peak_rss_mb`` is its own. Per axis it writes
``<out>/<axis>.json`` (the points, the settings held fixed, the commit, the machine and the date)
and ``<out>/<axis>.png`` (the curve on log-log axes, with the dashed line a linear cost would
follow from the first point), and prints one JSON object per point. Default ``--out``:
``bench/results/scaling`` (with ``--quick``, a temporary folder). Every JSON also holds
``growth``: between consecutive points, the exponent ``k`` of ``cost ~ size^k`` (1 is linear;
above 1 the cost grows faster than the size).

The axes and what is timed:

* ``qubits`` (4, 8, 12, 16): seconds per training epoch of the basic QNN, angle encoding, 5 layers,
  256 MNIST records, batch 32 (TFQ with the Adjoint gradient, the training route);
* ``layers`` (1, 5, 10, 20): the same for the paper's model (8 qubits, amplitude encoding), 500
  records;
* ``records`` (250 to 4,000): the paper's model (8 qubits, amplitude encoding, 10 layers);
* ``references`` (1 to 64): reference models of the ``default`` preset trained together in one
  TFQ program (`qmu_core.qnn.stacked.fit_many`, how the audit trains them), 5 epochs; seconds for
  all of them, and per model;
* ``shots`` (10 to 10,000): 100 records of ``paper_angle``'s circuit (random weights, compiled for
  ``willow_pink``) measured by the emulator with its calibrated noise (exact distributions, then
  the draws; timed: `sampling.run_circuits`) and by noiseless qsim.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path

environment.apply()

DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
AXES: dict[str, dict[str, Any]] = {
    "qubits": {"values": [4, 8, 12, 16], "quick": [4, 8], "unit": "qubits", "cost": "s per training epoch"},
    "layers": {"values": [1, 5, 10, 20], "quick": [1, 5], "unit": "layers", "cost": "s per training epoch"},
    "records": {
        "values": [250, 500, 1000, 2000, 4000],
        "quick": [250, 500],
        "unit": "training records",
        "cost": "s per training epoch",
    },
    "references": {
        "values": [1, 2, 4, 8, 16, 32, 64],
        "quick": [1, 2],
        "unit": "reference models",
        "cost": "s to train them (5 epochs)",
    },
    "shots": {
        "values": [10, 100, 1000, 10000],
        "quick": [10, 100],
        "unit": "shots per record",
        "cost": "s to measure 100 records",
    },
}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _train_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Median seconds per training epoch (after one warm-up epoch) of one model on MNIST records."""
    import numpy as np

    from qmu_core.config import DataConfig, ModelConfig, TrainConfig
    from qmu_core.datasets import load_dataset
    from qmu_core.features import FeatureMap
    from qmu_core.qnn import training
    from qmu_core.qnn.models import QNN

    model = ModelConfig(kind="basic_qnn", encoding=spec["encoding"], layers=spec["layers"], n_qubits=spec["qubits"])
    ds = load_dataset(DataConfig(dataset="mnist", mnist_path=spec["mnist_path"]))
    n = spec["records"]
    flat = ds.images[:n].reshape(n, -1)
    x = FeatureMap.fit(flat, model.feature_spec).transform(flat)
    y = ds.labels[:n].astype(np.int32)
    train = TrainConfig(epochs=1 + spec["epochs"], batch_size=32, optimizer="adam", loss="cross_entropy")
    qnn = QNN(model, n_classes=10, image_side=ds.side, seed=0)
    marks = [time.perf_counter()]
    training.fit(qnn, x, y, train, seed=0, progress=lambda *_: marks.append(time.perf_counter()))
    epochs = [b - a for a, b in zip(marks[1:-1], marks[2:], strict=True)]
    packed = getattr(qnn.backend, "packed", None)
    route = "native op" if packed is not None and packed.native is not None else "TFQ Adjoint"
    return {
        "seconds": round(statistics.median(epochs), 3),
        "epochs_timed": len(epochs),
        "gradient_route": route,
        "peak_rss_mb": _peak_mb(),
    }


def _references_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Wall seconds to build and train `value` default-preset models in one program (`train_speed._stacked`)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from train_speed import _stacked  # type: ignore[import-not-found]

    found = _stacked({"models": spec["value"], "epochs": spec["epochs"]})
    return {
        "seconds": found["wall_s"],
        "per_model_s": found["wall_per_model_s"],
        "records_per_model": found["records_per_model"],
        "peak_rss_mb": found["peak_rss_mb"],
    }


def _shots_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds to measure `records` prepared circuits with `value` shots each, per sampler."""
    import numpy as np
    import pandas as pd

    from qmu_core.config import EmulatorSampler, ModelConfig, QsimSampler
    from qmu_core.hardware import prepare, samplers, sampling

    model = ModelConfig(n_qubits=8, layers=10, encoding="angle")
    rng = np.random.default_rng(0)
    n_theta = 3 * 8 * model.layers
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n_theta]], "values": [rng.normal(size=n_theta)]})
    x = rng.uniform(0, np.pi, size=(spec["records"], 8))
    out: dict[str, Any] = {}
    for name, section in (
        ("emulator", EmulatorSampler(noise="processor", processor="willow_pink")),
        ("qsim", QsimSampler()),
    ):
        kind = samplers.resolve(section)
        circuits = prepare.prepare_model(weights, x, model, target=kind.processor).circuits
        sampler = kind.build(seed=1, cpu_threads=samplers.threads(0))
        start = time.perf_counter()
        bits = sampling.run_circuits(circuits, sampler, spec["value"])
        out[f"{name}_s"] = round(time.perf_counter() - start, 3)
        assert bits.shape == (len(circuits), spec["value"], 8)
    return {"seconds": out["emulator_s"], **out, "peak_rss_mb": _peak_mb()}


def _spec(axis: str, value: int, args: argparse.Namespace) -> dict[str, Any]:
    base = {"axis": axis, "value": value, "mnist_path": args.mnist_path, "epochs": args.epochs}
    if axis == "qubits":
        return {**base, "qubits": value, "layers": 5, "encoding": "angle", "records": 256}
    if axis == "layers":
        return {**base, "qubits": 8, "layers": value, "encoding": "amplitude", "records": 500}
    if axis == "records":
        return {**base, "qubits": 8, "layers": 10, "encoding": "amplitude", "records": value}
    if axis == "references":
        return {**base, "epochs": 5}
    return {**base, "records": 100}


POINTS = {
    "qubits": _train_point,
    "layers": _train_point,
    "records": _train_point,
    "references": _references_point,
    "shots": _shots_point,
}


def growth(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between consecutive points: ``k`` in ``cost ~ size^k`` (log-log slope; 1 is linear)."""
    out = []
    for a, b in zip(points, points[1:], strict=False):
        if a["seconds"] > 0 and b["seconds"] > 0 and b["value"] != a["value"]:
            k = math.log(b["seconds"] / a["seconds"]) / math.log(b["value"] / a["value"])
            out.append(
                {
                    "from": a["value"],
                    "to": b["value"],
                    "cost_ratio": round(b["seconds"] / a["seconds"], 2),
                    "exponent": round(k, 2),
                }
            )
    return out


def plot(axis: str, points: list[dict[str, Any]], path: Path) -> None:
    """The curve on log-log axes, a linear cost from the first point dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = AXES[axis]
    xs = [p["value"] for p in points]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    series = (
        [("seconds", "QMU")]
        if axis != "shots"
        else [("emulator_s", "emulator (willow_pink noise)"), ("qsim_s", "qsim, noiseless")]
    )
    for key, label in series:
        ax.plot(xs, [p[key] for p in points], "o-", label=label)
    ax.plot(xs, [points[0]["seconds"] * x / xs[0] for x in xs], "--", color="grey", label="linear from the first point")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([str(x) for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(meta["unit"])
    ax.set_ylabel(meta["cost"])
    ax.set_title(f"Cost against {meta['unit']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--axes", default=",".join(AXES), help=f"Comma-separated, from {', '.join(AXES)}.")
    p.add_argument("--quick", action="store_true", help="Only the two smallest sizes of each axis.")
    p.add_argument("--epochs", type=int, default=2, help="Timed training epochs per point (after one warm-up).")
    p.add_argument("--mnist-path", default=str(DEFAULT_MNIST), help="Directory with the MNIST IDX files.")
    p.add_argument("--out", help="Output folder; default bench/results/scaling, with --quick a temporary one.")
    p.add_argument("--replot", action="store_true", help="Redraw the PNGs from the JSON files in --out; run nothing.")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(POINTS[spec["axis"]](spec)), flush=True)
        return 0
    axes = [a.strip() for a in args.axes.split(",") if a.strip()]
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        p.error(f"--axes: unknown {unknown}; choose from {', '.join(AXES)}.")
    from qmu_core.machine import describe

    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="qmu-scaling-quick-") if args.quick else str(ROOT / "bench/results/scaling")
    out = Path(args.out)
    if args.replot:
        for axis in axes:
            plot(axis, json.loads((out / f"{axis}.json").read_text())["points"], out / f"{axis}.png")
        return 0
    print(f"[scaling] writing {out}", file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for axis in axes:
        points = []
        for value in AXES[axis]["quick" if args.quick else "values"]:
            spec = _spec(axis, value, args)
            print(f"[scaling] {axis}={value} ...", file=sys.stderr, flush=True)
            proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if proc.returncode != 0 or not line.startswith("{"):
                failed += 1
                print(json.dumps({"axis": axis, "value": value, "error": proc.stderr.strip().splitlines()[-3:]}))
                continue
            point = {"value": value, **json.loads(line)}
            print(json.dumps({"axis": axis, **point}), flush=True)
            points.append(point)
        if not points:
            continue
        specs = [_spec(axis, p["value"], args) for p in points]
        fixed = {k: v for k, v in specs[0].items() if k not in ("axis", "value", "mnist_path")}
        fixed = {k: v for k, v in fixed.items() if all(s.get(k) == v for s in specs)}  # what the axis does not vary
        record = {
            "axis": axis,
            "unit": AXES[axis]["unit"],
            "cost": AXES[axis]["cost"],
            "fixed": fixed,
            "points": points,
            "growth": growth(points),
            "quick": args.quick,
            **describe(),
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        (out / f"{axis}.json").write_text(json.dumps(record, indent=1) + "\n")
        plot(axis, points, out / f"{axis}.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
