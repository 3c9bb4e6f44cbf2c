"""Training and inference speed of the QNNs on 1,000 MNIST records; one JSON object per line.

    python bench/train_speed.py                      # every configuration below
    python bench/train_speed.py --only basic_qnn     # a subset (model kind or encoding)
    python bench/train_speed.py --mnist-path DIR --records 1000 --epochs 3 --backend tfq
    python bench/train_speed.py --wide-only          # 12 and 16 qubits, with and without re-uploading

Each configuration runs in a fresh subprocess so `peak_rss_mb` is its own. For each it reports
the median seconds per training epoch (forward, Adjoint gradient and optimizer update; batch 32)
after one warm-up epoch, records per second, inference seconds for all records, peak RSS, and
the epoch time of a dense batched state-vector implementation of the same circuit in plain TF
(the `dense` expectation backend, `qmu_core.qnn.backends.dense`, on its faster route for the
width) with `ratio = epoch_s / reference_epoch_s`, so numbers can be compared across machines.

``gradient_route`` says how the circuit gradient was computed: QMU's native op from the encoded
states (`qmu_core.qnn.native`; amplitude encoding up to 8 qubits) or TFQ's Adjoint op. Where
the native op is used, the same run also times the model on TFQ's Adjoint route
(``tfq_adjoint_epoch_s``, the path before the op) and reports ``speedup = tfq_adjoint_epoch_s /
epoch_s``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path

environment.apply()

CONFIGS = [
    {"kind": "basic_qnn", "encoding": "angle", "layers": 5},
    {"kind": "basic_qnn", "encoding": "angle", "layers": 10},
    {"kind": "basic_qnn", "encoding": "amplitude", "layers": 5},
    {"kind": "basic_qnn", "encoding": "amplitude", "layers": 10},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 1},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 5},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 10},
    # wide circuits (issue 28 item 3): their own width and at most `records` records (a 16-qubit
    # epoch of 1,000 records is about 25 s on TFQ and 55 s on the dense reference)
    {"kind": "basic_qnn", "encoding": "angle", "layers": 5, "qubits": 12, "records": 320},
    {"kind": "basic_qnn", "encoding": "angle", "layers": 5, "qubits": 12, "records": 320, "reupload": True},
    {"kind": "basic_qnn", "encoding": "angle", "layers": 5, "qubits": 16, "records": 64},
    {"kind": "basic_qnn", "encoding": "angle", "layers": 5, "qubits": 16, "records": 64, "reupload": True},
]
"""Configurations; ``qubits`` and ``records`` in an entry override ``--qubits`` and cap ``--records``."""
DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def _one(spec: dict) -> dict:
    import numpy as np

    from qmu_core.config import DataConfig, ModelConfig, TrainConfig
    from qmu_core.datasets import load_dataset
    from qmu_core.features import FeatureMap
    from qmu_core.qnn import training
    from qmu_core.qnn.backends import make_backend
    from qmu_core.qnn.models import QNN

    model = ModelConfig(
        kind=spec["kind"],
        encoding=spec["encoding"],
        layers=spec["layers"],
        n_qubits=spec["qubits"],
        reupload=spec.get("reupload", False),
        backend=spec["backend"],
    )
    ds = load_dataset(DataConfig(dataset="mnist", mnist_path=spec["mnist_path"]))
    n = spec["records"]
    flat = ds.images[:n].reshape(n, -1)
    y = ds.labels[:n].astype(np.int32)
    if model.kind == "basic_qnn":
        x = FeatureMap.fit(flat, model.feature_spec).transform(flat)
    else:
        x = (flat * 2.0 - 1.0).astype(np.float32)
    # one warm-up epoch (tracing, TFQ program conversion), then the measured ones, in ONE fit()
    train = TrainConfig(epochs=1 + spec["epochs"], batch_size=spec["batch"], optimizer="adam", loss="cross_entropy")
    qnn = QNN(model, n_classes=10, image_side=ds.side, seed=0)

    def epoch_seconds(m: object) -> float:
        marks = [time.perf_counter()]
        training.fit(m, x, y, train, seed=0, progress=lambda *_: marks.append(time.perf_counter()))  # type: ignore[arg-type]
        return statistics.median(b - a for a, b in zip(marks[1:-1], marks[2:], strict=True))

    epoch_s = epoch_seconds(qnn)
    training.predict_proba(qnn, x)
    infer = []
    for _ in range(3):
        t0 = time.perf_counter()
        training.predict_proba(qnn, x, batch_size=n)
        infer.append(time.perf_counter() - t0)

    packed = getattr(qnn.backend, "packed", None)
    native = packed is not None and packed.native is not None
    old: dict = {}
    if native:  # the same model on TFQ's Adjoint route, in the same run
        before = QNN(model, n_classes=10, image_side=ds.side, seed=0)
        before.backend.packed.native = None  # type: ignore[attr-defined]
        old_s = epoch_seconds(before)
        old = {"tfq_adjoint_epoch_s": round(old_s, 3), "speedup": round(old_s / epoch_s, 2)}

    ref = QNN(model, n_classes=10, image_side=ds.side, seed=0, backend=make_backend(model, "dense"))
    reference_epoch_s = epoch_seconds(ref)
    return {
        "model": model.kind,
        "encoding": model.encoding,
        "qubits": model.n_qubits,
        "layers": model.layers,
        "reupload": model.reupload,
        "records": n,
        "batch": spec["batch"],
        "backend": qnn.backend.name,
        "gradient_route": "native op" if native else "TFQ Adjoint",
        "epoch_s": round(epoch_s, 3),
        "records_per_s": round(n / epoch_s, 1),
        "infer_s": round(statistics.median(infer), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "reference_epoch_s": round(reference_epoch_s, 3),
        "ratio": round(epoch_s / reference_epoch_s, 2),
        **old,
    }


def _stacked(spec: dict) -> dict:
    """M default-preset models trained cold in one program (`fit_many`); see the module doc."""
    import numpy as np

    from qmu_core.config import preset
    from qmu_core.datasets import load_dataset
    from qmu_core.qnn import native
    from qmu_core.qnn.stacked import QNNStack, fit_many
    from qmu_core.qnn.training import class_index

    cfg = preset("default")
    m_count, n = spec["models"], cfg.data.n_target_train
    train = cfg.train.model_copy(update={"epochs": spec["epochs"]})
    ds = load_dataset(cfg.data)
    keep = np.isin(ds.labels, cfg.data.classes)
    images = (ds.images[keep].reshape(int(keep.sum()), -1) * 2.0 - 1.0).astype(np.float32)
    labels = class_index(ds.labels[keep], cfg.data.classes)
    rng = np.random.default_rng(0)
    rows = [rng.choice(len(images), size=n, replace=False) for _ in range(m_count)]  # a random set per model
    seeds = list(range(m_count))
    marks: list[float] = []
    t0 = time.perf_counter()
    stack = QNNStack(cfg.model, n_classes=len(cfg.data.classes), image_side=ds.side, seeds=seeds)
    fit_many(stack, [images[r] for r in rows], [labels[r] for r in rows], train, seeds=seeds,
             progress=lambda *_: marks.append(time.perf_counter()))  # fmt: skip
    wall = time.perf_counter() - t0
    steady = statistics.median(b - a for a, b in zip(marks[:-1], marks[1:], strict=True)) if len(marks) > 2 else wall
    return {
        "path": "model-batched (fit_many)",
        "preset": "default",
        "models": m_count,
        "records_per_model": n,
        "epochs": train.epochs,
        "gradient_route": "native op" if native.load() is not None else "TFQ Adjoint",
        "wall_s": round(wall, 2),
        "wall_per_model_s": round(wall / m_count, 3),
        "steady_epoch_per_model_s": round(steady / m_count, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    """Run every selected configuration in its own subprocess and print its JSON line."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-path", default=str(DEFAULT_MNIST), help="Directory with MNIST IDX files or mnist.npz.")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3, help="Measured epochs per configuration (median).")
    p.add_argument("--qubits", type=int, default=8)
    p.add_argument("--backend", default="tfq_packed", choices=["tfq_packed", "tfq"])
    p.add_argument("--only", action="append", help="Keep configurations whose kind or encoding matches.")
    p.add_argument("--wide-only", action="store_true", help="Only the 12- and 16-qubit configurations.")
    p.add_argument("--stacked", help="Model counts for the model-batched path, e.g. 1,8,32,64 (module doc).")
    p.add_argument("--stacked-epochs", type=int, default=60, help="Epochs of the model-batched path (default: 60).")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--one-stacked", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(_one(json.loads(args.one))), flush=True)
        return 0
    if args.one_stacked:
        print(json.dumps(_stacked(json.loads(args.one_stacked))), flush=True)
        return 0
    if args.stacked:
        failed = 0
        for m in (int(v) for v in args.stacked.split(",")):
            spec = json.dumps({"models": m, "epochs": args.stacked_epochs})
            proc = subprocess.run([sys.executable, __file__, "--one-stacked", spec], capture_output=True, text=True)
            line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if proc.returncode != 0 or not line.startswith("{"):
                failed += 1
                line = json.dumps({"models": m, "error": proc.stderr.strip().splitlines()[-1:] or ["no output"]})
            print(line, flush=True)
        return 1 if failed else 0
    failed = 0
    for cfg in CONFIGS:
        if args.only and not ({cfg["kind"], cfg["encoding"]} & set(args.only)):
            continue
        if args.wide_only and "qubits" not in cfg:
            continue
        spec = {
            **cfg,
            "qubits": cfg.get("qubits", args.qubits),
            "records": min(args.records, cfg.get("records", args.records)),
            "batch": args.batch,
            "epochs": args.epochs,
            "backend": args.backend,
            "mnist_path": args.mnist_path,
        }
        proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if proc.returncode != 0 or not line.startswith("{"):
            failed += 1
            print(json.dumps({**cfg, "error": proc.stderr.strip().splitlines()[-1:] or ["no output"]}), flush=True)
        else:
            print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
