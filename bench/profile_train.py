"""Where one training epoch's time goes, piece by piece, for the packed TFQ backend.

    python bench/profile_train.py                          # the three models below, 1,000 MNIST records
    python bench/profile_train.py --only hqnn --repeats 5
    python bench/profile_train.py --mnist-path DIR --records 1000 --batch 32 --trace /tmp/tfprof

Models (``--only`` keeps those whose name contains the text):

* ``basic_amplitude_l10``: basic QNN, amplitude encoding, 8 qubits, L = 10;
* ``hqnn_default``: the `default` preset's model (HQNN, CNN front end, 8-qubit amplitude, L = 1);
* ``basic_angle_l10``: basic QNN, angle encoding, 8 qubits, L = 10.

Data: the first ``--records`` MNIST records (``--mnist-path``, read by `qmu_core.datasets`
as `bench/train_speed.py` does: PCA features for the basic QNN, pixels scaled to [-1, 1] for
the HQNN); the sklearn digits if MNIST is not there. Batch order from `training.batches`.

Measured, each as the sum over one epoch's batches of a `tf.function` called on the same
batches (warmed up). One `training.fit` run trains ``1 + --repeats`` epochs; after every epoch
one round of every piece runs, so load from other processes falls on both alike; the figures
are medians over the epochs (the first, which traces, left out) and over the rounds:

* ``epoch_fit``: `training.fit`'s epoch as it runs;
* ``step``: the training step alone (a copy of `training.fit`'s step) over the epoch's batches;
* ``classical_front``: the front end (identity for the basic QNN, the CNN for the HQNN),
  forward and backward (its variables' gradients from an upstream of ones);
* ``encoding``: `Encoding.values_tf` (and `states_tf` on the unitary route), forward and backward;
* ``tfq_forward``: the backend's differentiable forward alone (TFQ state op, or unitary op + matmul);
* ``tfq_adjoint``: the backend's circuit gradient alone: QMU's native op from the encoded states
  when the unitary route has it (`qmu_core.qnn.native`), else TFQ's Adjoint op calls
  (``_split_gradients`` of `qmu_core.qnn.backends.packed.PackedCircuit`); ``gradient_route``
  says which;
* ``classical_head_loss``: head, softmax and loss, forward and backward;
* ``optimizer``: the optimizer's ``apply_gradients`` on the step's gradients;
* ``call_overhead``: an empty `tf.function` called once per batch (subtracted from each piece);
* ``python_overhead``: ``epoch_fit`` minus the sum of the pieces (Python loop, the step's
  dispatch, argument conversion, the float() reads of loss and hits, what the graph overlaps).

Also the epoch of the same model with ``model.backend = "dense"`` (`training.fit`, as
`bench/train_speed.py` times the dense limit) and ``ratio = epoch_fit / dense_epoch``.

Prints one JSON object per model (seconds per epoch), then a table to stderr. ``--trace DIR``
also writes a `tf.profiler.experimental` trace of one `training.fit` epoch per model (view in
TensorBoard's profile plugin).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path

environment.apply()

DEFAULT_MNIST = ROOT.parent / "shared" / "data" / "mnist"
MODELS: dict[str, dict[str, Any]] = {
    "basic_amplitude_l10": {"kind": "basic_qnn", "encoding": "amplitude", "layers": 10, "n_qubits": 8},
    "hqnn_default": {"preset": "default"},
    "basic_angle_l10": {"kind": "basic_qnn", "encoding": "angle", "layers": 10, "n_qubits": 8},
}
PIECES = ("classical_front", "encoding", "tfq_forward", "tfq_adjoint", "classical_head_loss", "optimizer")


def _data(mnist_path: str, records: int) -> tuple[Any, Any, int, str]:
    """Flat images in [0, 1], labels, image side and the dataset's name (MNIST, else digits)."""
    import numpy as np

    from qmu_core.config import DataConfig
    from qmu_core.datasets import load_dataset

    path = Path(mnist_path)
    data = DataConfig(dataset="mnist", mnist_path=str(path)) if path.is_dir() else DataConfig(dataset="digits")
    ds = load_dataset(data)
    n = min(records, len(ds.labels))
    return ds.images[:n].reshape(n, -1), ds.labels[:n].astype(np.int32), ds.side, data.dataset


def _model_config(spec: dict[str, Any]) -> Any:
    from qmu_core.config import ModelConfig, preset

    if "preset" in spec:
        return preset(spec["preset"]).model.model_copy(update={"backend": "tfq_packed"})
    return ModelConfig(**spec, backend="tfq_packed")


def _round(run_batch: Callable[[int], Any], n_batches: int, sync: Callable[[Any], Any]) -> float:
    """Summed seconds of `run_batch(i)` (result synced) over every batch of one epoch."""
    total = 0.0
    for i in range(n_batches):
        t0 = time.perf_counter()
        sync(run_batch(i))
        total += time.perf_counter() - t0
    return total


def _fit_epochs(qnn: Any, x: Any, y: Any, batch: int, repeats: int) -> float:
    """Median epoch seconds of `training.fit` over `repeats` epochs after one warm-up epoch."""
    from qmu_core.config import TrainConfig
    from qmu_core.qnn import training

    train = TrainConfig(epochs=1 + repeats, batch_size=batch, optimizer="adam", loss="cross_entropy")
    marks = [time.perf_counter()]
    training.fit(qnn, x, y, train, seed=0, progress=lambda *_: marks.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(marks[1:-1], marks[2:], strict=True))


def profile(name: str, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Every piece's seconds per epoch for one model (module doc)."""
    import numpy as np

    from qmu_core._tf import tf
    from qmu_core.config import TrainConfig
    from qmu_core.features import FeatureMap
    from qmu_core.qnn import training
    from qmu_core.qnn.backends import make_backend
    from qmu_core.qnn.models import QNN

    flat, y, side, dataset = _data(args.mnist_path, args.records)
    cfg = _model_config(spec)
    if cfg.kind == "basic_qnn":
        x = FeatureMap.fit(flat, cfg.feature_spec).transform(flat).astype(np.float32)
    else:
        x = (flat * 2.0 - 1.0).astype(np.float32)
    qnn = QNN(cfg, n_classes=10, image_side=side, seed=0)
    backend = qnn.backend
    packed = getattr(backend, "packed", None)
    if packed is None:
        raise SystemExit(f"profile_train: {name} runs on the {backend.name!r} backend; this profile needs tfq_packed.")
    encoding = backend.encoding
    unitary = bool(packed.unitary_training)

    # 2. the pieces, on the same batches
    idx = training.batches(len(x), args.batch, np.random.default_rng(0))
    xb = [tf.constant(x[i]) for i in idx]
    yb = [tf.constant(y[i]) for i in idx]
    front_vars = [qnn.variables[k] for k in sorted(qnn.variables) if k not in ("theta", "head_w", "head_b")]
    head_vars = [qnn.variables["head_w"], qnn.variables["head_b"]]
    theta = qnn.variables["theta"]
    feats = [qnn.front_end(b) for b in xb]
    values = [backend.symbol_values(f) for f in feats]
    states = [encoding.states_tf(f) if unitary else None for f in feats]
    ev = [backend.expectations(f, theta) for f in feats]
    dy = [tf.ones_like(e) for e in ev]
    loss_kind = "cross_entropy"
    opt = training.optimizer(TrainConfig(optimizer="adam"))
    variables = qnn.trainable_variables

    @tf.function(reduce_retracing=True)
    def null(a: tf.Tensor) -> tf.Tensor:
        return a

    @tf.function(reduce_retracing=True)
    def step(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            probs = qnn(a)
            loss = tf.reduce_mean(training.per_record_loss(probs, b, loss_kind))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        return loss, grads

    @tf.function(reduce_retracing=True)
    def front(a: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            f = qnn.front_end(a)
        return f, (tape.gradient(f, front_vars, output_gradients=tf.ones_like(f)) if front_vars else [])

    @tf.function(reduce_retracing=True)
    def encode(f: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(f)
            v = backend.symbol_values(f)
            s = encoding.states_tf(f) if unitary else tf.zeros([0])  # the unitary route's states (no gradient)
        return v, s, tape.gradient(v, f, output_gradients=tf.ones_like(v))

    @tf.function(reduce_retracing=True)
    def circuit_forward(v: tf.Tensor, s: Any) -> tf.Tensor:
        return packed.expectations(v, theta, s)

    @tf.function(reduce_retracing=True)
    def circuit_forward_backward(v: tf.Tensor, s: Any, g: tf.Tensor) -> tuple[tf.Tensor, ...]:
        wrt = s if native is not None else v  # the native route differentiates through the states
        with tf.GradientTape() as tape:
            tape.watch(wrt)
            e = packed.expectations(v, theta, s)
        return (e, *tape.gradient(e, [wrt, theta], output_gradients=g))

    # the Adjoint op calls alone, as the custom gradient issues them (private; absent -> the difference)
    native = getattr(packed, "native", None)
    direct_adjoint = getattr(packed, "_split_gradients" if packed.split_gradient else "_adjoint_gradients", None)

    @tf.function(reduce_retracing=True)
    def adjoint(v: tf.Tensor, s: Any, g: tf.Tensor) -> tuple[tf.Tensor, ...]:
        if native is not None:
            return native(s[None], theta[None], packed._gates, g[None])[1:]
        return direct_adjoint(v, theta, g)  # type: ignore[misc]

    @tf.function(reduce_retracing=True)
    def head_loss(z: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = tf.reduce_mean(training.per_record_loss(qnn.head(z), b, loss_kind))
        return loss, tape.gradient(loss, [z, *head_vars])

    @tf.function(reduce_retracing=True)
    def apply(grads: list[tf.Tensor]) -> tf.Tensor:
        opt.apply_gradients(zip(grads, variables, strict=True))
        return tf.constant(0.0)

    def sync(out: Any) -> None:
        for t in tf.nest.flatten(out):
            if isinstance(t, tf.Tensor):
                t.numpy()

    n_b = len(idx)
    pieces: dict[str, Callable[[int], Any]] = {
        "call_overhead": lambda i: null(yb[i]),
        "step": lambda i: step(xb[i], yb[i]),
        "classical_front": lambda i: front(xb[i]),
        "encoding": lambda i: encode(feats[i]),
        "tfq_forward": lambda i: circuit_forward(values[i], states[i]),
        "tfq_forward_backward": lambda i: circuit_forward_backward(values[i], states[i], dy[i]),
        "classical_head_loss": lambda i: head_loss(ev[i], yb[i]),
        "optimizer": lambda i: apply(step_grads[i]),
    }
    if direct_adjoint is not None:
        pieces["tfq_adjoint"] = lambda i: adjoint(values[i], states[i], dy[i])
    step_grads = [step(xb[i], yb[i])[1] for i in range(n_b)]
    for run_batch in pieces.values():  # warm-up: traces every batch shape
        _round(run_batch, n_b, sync)

    # One round of every piece after each epoch of ONE training.fit run, so that load from other
    # processes on the machine falls on the epochs and the pieces alike (medians over the rounds).
    if args.trace:
        _fit_epochs(qnn, x, y, args.batch, 1)  # warm-up outside the trace
        tf.profiler.experimental.start(str(Path(args.trace) / name))
        _fit_epochs(qnn, x, y, args.batch, 1)
        tf.profiler.experimental.stop()
    rounds: dict[str, list[float]] = {k: [] for k in pieces}
    epochs: list[float] = []
    started = [time.perf_counter()]

    def after_epoch(epoch: int, *_: Any) -> None:
        if epoch > 1:  # the first epoch traces the step
            epochs.append(time.perf_counter() - started[0])
        for key, run_batch in pieces.items():
            rounds[key].append(_round(run_batch, n_b, sync))
        started[0] = time.perf_counter()

    train = TrainConfig(epochs=1 + args.repeats, batch_size=args.batch, optimizer="adam", loss="cross_entropy")
    started[0] = time.perf_counter()
    training.fit(qnn, x, y, train, seed=0, progress=after_epoch)
    epoch_fit = statistics.median(epochs)
    seconds = {k: statistics.median(v) for k, v in rounds.items()}
    fwd_bwd = seconds["tfq_forward_backward"]
    if direct_adjoint is not None:
        adjoint_how = "direct"
    else:
        seconds["tfq_adjoint"] = max(fwd_bwd - seconds["tfq_forward"], 0.0)
        adjoint_how = "forward+backward minus forward"
    call = seconds["call_overhead"]
    net = {p: max(seconds[p] - call, 0.0) for p in PIECES}
    python_overhead = epoch_fit - sum(net.values())

    dense = QNN(cfg, n_classes=10, image_side=side, seed=0, backend=make_backend(cfg, "dense"))
    dense_epoch = _fit_epochs(dense, x, y, args.batch, args.repeats)
    r = 4
    return {
        "model": name,
        "kind": cfg.kind,
        "encoding": cfg.encoding,
        "qubits": cfg.n_qubits,
        "layers": cfg.layers,
        "dataset": dataset,
        "records": len(x),
        "batch": args.batch,
        "batches": n_b,
        "backend": backend.name,
        "forward_route": "unitary op + matmul" if unitary else "packed state op",
        "adjoint_timed": adjoint_how,
        "gradient_route": "native op from the states (qsim)" if native is not None else "TFQ Adjoint",
        "epoch_fit_s": round(epoch_fit, r),
        "step_s": round(seconds["step"] - call, r),
        **{f"{p}_s": round(net[p], r) for p in PIECES},
        "tfq_forward_backward_s": round(fwd_bwd - call, r),
        "call_overhead_s": round(call, r),
        "python_overhead_s": round(python_overhead, r),
        "dense_epoch_s": round(dense_epoch, r),
        "ratio": round(epoch_fit / dense_epoch, 2),
        "epoch_fit_all_s": [round(e, r) for e in epochs],
        "tfq_adjoint_all_s": [round(e, r) for e in rounds.get("tfq_adjoint", [])],
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }


def table(rows: list[dict[str, Any]]) -> str:
    """A readable table: one column per model, seconds per epoch and share of the epoch."""
    keys = ["epoch_fit_s", "step_s", *[f"{p}_s" for p in PIECES], "python_overhead_s", "dense_epoch_s"]
    head = f"{'piece (s / epoch, % of epoch)':<30}" + "".join(f"{r['model']:>24}" for r in rows)
    lines = [head, "-" * len(head)]
    for k in keys:
        cells = "".join(f"{r[k]:>14.3f} ({100 * r[k] / r['epoch_fit_s']:5.1f}%)" for r in rows)
        lines.append(f"{k[:-2]:<30}{cells}")
    lines.append(f"{'ratio to dense':<30}" + "".join(f"{r['ratio']:>23.2f}x" for r in rows))
    lines.append(f"{'forward route':<30}" + "".join(f"{r['forward_route']:>24}" for r in rows))
    return "\n".join(lines)


def main() -> int:
    """Profile every selected model in this process and print its JSON line, then the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-path", default=str(DEFAULT_MNIST), help="Directory with MNIST files (else digits).")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="Measured epochs per piece (median).")
    p.add_argument("--only", action="append", help="Keep models whose name contains this text.")
    p.add_argument("--trace", help="Also write a tf.profiler trace of one epoch per model under this directory.")
    args = p.parse_args()
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: give 1 or more")
    rows = []
    for name, spec in MODELS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        print(f"profile_train: {name} ...", file=sys.stderr, flush=True)
        row = profile(name, spec, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if not rows:
        p.error(f"--only {args.only}: no model matches; the models are {', '.join(MODELS)}")
    print("\n" + table(rows), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
