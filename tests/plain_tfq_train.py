"""A user's own training script: plain TensorFlow Quantum, no QMU (tests/flows/test_external_audit.py runs it).

It trains the example plug-in's re-uploading circuit (``qmu_reupload_plugin.reupload_ring``, the
user's own package) with a dense softmax head on the rows of ``qmu split``'s table with role
``target_train`` (``label``, and ``x``: the model inputs), with Adam and categorical
cross-entropy, and saves the weights keyed by symbol name, as ``qmu audit --weights`` reads them::

    python tests/plain_tfq_train.py TABLE.parquet OUT.npz --classes 0 1 4 7 --qubits 4 --layers 2 \
        --epochs 3 --batch-size 16 --learning-rate 0.1 --seed 5

Nothing of QMU is imported: the circuit is the plug-in's, the rest is TFQ and Keras. TFQ's layers
are Keras 2 layers, so run it with TF_USE_LEGACY_KERAS=1 in the environment (the test runs it under
``python -m qmu_core.environment``, which sets that and nothing else of QMU's).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_quantum as tfq
import tf_keras
from qmu_reupload_plugin import reupload_ring


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("out")
    p.add_argument("--classes", type=int, nargs="+", required=True)
    p.add_argument("--qubits", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--batch-size", type=int, required=True)
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--seed", type=int, required=True)
    a = p.parse_args()

    rows = pd.read_parquet(a.table)
    if "role" in rows.columns:  # `qmu split`'s whole table: the model trains on the target's training records
        rows = rows[rows["role"] == "target_train"]
    built = reupload_ring(a.qubits, a.layers)
    n_in, n_w = len(built.input_symbols), len(built.weight_symbols)
    x = np.stack(rows["x"].to_numpy())[:, :n_in].astype(np.float32)
    y = np.searchsorted(np.array(a.classes), rows["label"].to_numpy()).astype(np.int32)

    rng = np.random.default_rng(a.seed)
    theta = tf.Variable(rng.uniform(-np.pi, np.pi, n_w).astype(np.float32))
    n_out, n_cls = len(built.readout), len(a.classes)
    limit = np.sqrt(6.0 / (n_out + n_cls))
    head_w = tf.Variable(rng.uniform(-limit, limit, (n_out, n_cls)).astype(np.float32))
    head_b = tf.Variable(np.zeros(n_cls, np.float32))
    names = [str(s) for s in (*built.input_symbols, *built.weight_symbols)]
    circuit = tfq.convert_to_tensor([built.circuit])
    expectation = tfq.layers.Expectation(differentiator=tfq.differentiators.Adjoint())
    opt = tf_keras.optimizers.Adam(learning_rate=a.learning_rate)

    def probs(xb: tf.Tensor) -> tf.Tensor:
        b = tf.shape(xb)[0]
        values = tf.concat([xb, tf.tile(theta[None, :], [b, 1])], axis=1)
        z = expectation(tf.tile(circuit, [b]), symbol_names=names, symbol_values=values, operators=list(built.readout))
        return tf.nn.softmax(z @ head_w + head_b)

    for _ in range(a.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), a.batch_size):
            idx = order[i : i + a.batch_size]
            with tf.GradientTape() as tape:
                p_b = tf.clip_by_value(probs(tf.constant(x[idx])), 1e-7, 1.0)
                loss = -tf.reduce_mean(tf.math.log(tf.gather(p_b, y[idx], batch_dims=1)))
            grads = tape.gradient(loss, [theta, head_w, head_b])
            opt.apply_gradients(zip(grads, [theta, head_w, head_b], strict=True))
    acc = float(np.mean(np.argmax(probs(tf.constant(x)).numpy(), axis=1) == y))
    saved = {str(s): np.float32(v) for s, v in zip(built.weight_symbols, theta.numpy(), strict=True)}
    np.savez(a.out, head_w=head_w.numpy(), head_b=head_b.numpy(), **saved)
    print(f"trained {len(x)} records, training accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
