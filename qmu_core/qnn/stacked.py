"""Model-batched training: M models of one `ModelConfig` in one TensorFlow program.

A `QNNStack` holds M models of the same configuration (same circuit, head and front end) that
differ only in their weights: every variable of a `QNN` gets a leading model axis
(``theta (M, n_w)``, ``head_w (M, n, C)``, ``head_b (M, C)``, and for the HQNN
``conv_k (M, 5, 5, 1, F)``, ``conv_b (M, F)``, ``dense_w (M, pooled, width)``,
``dense_b (M, width)``). Model m's initial weights are exactly those of
``QNN(model, seed=seeds[m])`` (they are drawn by `QNN` itself).

The forward pass maps inputs ``(M, B, d)`` to class probabilities ``(M, B, C)``:

* the HQNN's CNN runs for all models at once: the M models' images are the M input channels of
  one ``tf.nn.depthwise_conv2d`` (TF on CPU has no grouped ``conv2d``; a depthwise convolution
  with channel multiplier F is exactly M independent one-channel convolutions with F filters),
  then a batched matmul for the dense layer;
* the circuit goes through the backend's `ExpectationBackend.expectations_many`: with
  ``tfq_packed`` ONE TFQ op call carries every model's programs, each with its own weight symbol
  values (forward), and one gradient call serves all models: QMU's native op on the amplitude
  route (`qmu_core.qnn.native`, which takes a model axis), else TFQ's Adjoint; the other
  backends loop over models;
* the head is a batched matmul.

`fit_many` trains the stack with one optimizer over the stacked variables. Adam and SGD (with or
without momentum, Nesterov) update elementwise, and the loss is the sum over models of each
model's batch-mean loss, so slice m of every variable follows exactly the trajectory that
`qmu_core.qnn.training.fit` gives model m alone (same seed, data and batch order), up to float
rounding. `QNNStack.model` returns model m as an ordinary `QNN`, whose `QNN.weights_frame`
writes the per-model artifact as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.errors import ConfigError
from qmu_core.progress import Progress
from qmu_core.qnn.backends import ExpectationBackend, make_backend
from qmu_core.qnn.frontend import BasicFrontEnd, CNNFrontEnd, model_front_end
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches, optimizer, per_record_loss

__all__ = ["QNNStack", "fit_many"]


class QNNStack:
    """M models of one `ModelConfig` with stacked variables (module doc).

    Args:
        model: The model section shared by every model.
        n_classes: Outputs of the softmax head.
        image_side: Image height/width (HQNN input).
        seeds: One initial-weight seed per model; model m starts as ``QNN(..., seed=seeds[m])``.
        backend: The expectation backend; default `make_backend(model)`.

    Raises:
        ConfigError: For an empty `seeds`.
    """

    def __init__(
        self,
        model: ModelConfig,
        *,
        n_classes: int,
        image_side: int,
        seeds: Sequence[int],
        backend: ExpectationBackend | None = None,
    ) -> None:
        if len(seeds) == 0:
            raise ConfigError("QNNStack needs at least one model: `seeds` is empty; pass one seed per model.")
        self.cfg = model
        self.n_classes = n_classes
        self.image_side = image_side
        self.seeds = [int(s) for s in seeds]
        self.n_models = len(self.seeds)
        self.backend = backend if backend is not None else make_backend(model)
        self.front = model_front_end(model)
        singles = [self._single(seed) for seed in self.seeds]  # QNN's own initial weights, seed by seed
        self.variables: dict[str, tf.Variable] = {
            k: tf.Variable(np.stack([q.variables[k].numpy() for q in singles]), name=k, dtype=tf.float32)
            for k in sorted(singles[0].variables)
        }

    def _single(self, seed: int) -> QNN:
        return QNN(self.cfg, n_classes=self.n_classes, image_side=self.image_side, seed=seed, backend=self.backend)

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """Stacked variables in a fixed order (the optimizer's order), each with a leading model axis."""
        return [self.variables[k] for k in sorted(self.variables)]

    def model(self, m: int) -> QNN:
        """Model `m` as a single `QNN` carrying slice m of every variable (shares the backend).

        Raises:
            ConfigError: If `m` is not a model index.
        """
        if not 0 <= m < self.n_models:
            raise ConfigError(f"QNNStack has {self.n_models} models (0..{self.n_models - 1}); model {m} was asked for.")
        qnn = self._single(self.seeds[m])
        for name, var in qnn.variables.items():
            var.assign(self.variables[name][m])
        return qnn

    # ------------------------------------------------------------------ forward pass

    def front_end(self, inputs: tf.Tensor) -> tf.Tensor:
        """The circuit's features of every model, ``(M, B, width)``, from inputs ``(M, B, d)``."""
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        if isinstance(self.front, BasicFrontEnd):
            return inputs
        if isinstance(self.front, CNNFrontEnd):
            return self._cnn(inputs)
        raise ConfigError(f"QNNStack has no batched front end for model.kind={self.cfg.kind!r}.")

    def _cnn(self, inputs: tf.Tensor) -> tf.Tensor:
        """`CNNFrontEnd.forward` for M models at once (depthwise convolution over the model axis)."""
        v, side, n_models = self.variables, self.image_side, self.n_models
        batch = tf.shape(inputs)[1]
        filters = int(v["conv_k"].shape[-1])
        img = tf.transpose(tf.reshape(inputs, [n_models, batch, side, side]), [1, 2, 3, 0])  # (B, s, s, M)
        kernel = tf.transpose(v["conv_k"][:, :, :, 0, :], [1, 2, 0, 3])  # (5, 5, M, F): channel m*F + f
        h = tf.nn.depthwise_conv2d(img, kernel, [1, 1, 1, 1], "SAME")
        h = tf.nn.relu(h + tf.reshape(v["conv_b"], [n_models * filters]))
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")  # (B, s/2, s/2, M*F)
        hh, ww = side // 2, side // 2
        h = tf.transpose(tf.reshape(h, [batch, hh, ww, n_models, filters]), [3, 0, 1, 2, 4])
        h = tf.reshape(h, [n_models, batch, hh * ww * filters])  # per model, the single model's NHWC flatten
        h = tf.nn.leaky_relu(tf.matmul(h, v["dense_w"]) + v["dense_b"][:, None, :], alpha=0.01)
        return self.backend.encoding.squash(h)

    @tf.autograph.experimental.do_not_convert
    def expectations(self, inputs: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ of every model, ``(M, B, n_qubits)`` (differentiable w.r.t. every variable)."""
        return self.backend.expectations_many(self.front_end(inputs), self.variables["theta"])

    def head(self, z: tf.Tensor) -> tf.Tensor:
        """Class probabilities ``(M, B, C)`` from ⟨Z⟩ ``(M, B, n)``: each model's own softmax head."""
        return tf.nn.softmax(tf.matmul(z, self.variables["head_w"]) + self.variables["head_b"][:, None, :])

    @tf.autograph.experimental.do_not_convert
    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        """Class probabilities ``(M, B, C)`` of inputs ``(M, B, d)`` (model m reads ``inputs[m]``)."""
        return self.head(self.expectations(inputs))

    def __repr__(self) -> str:
        return f"QNNStack(n_models={self.n_models}, kind={self.cfg.kind!r}, backend={self.backend!r})"


def fit_many(
    stack: QNNStack,
    xs: Sequence[np.ndarray] | np.ndarray,
    ys: Sequence[np.ndarray] | np.ndarray,
    train: TrainConfig,
    *,
    seeds: Sequence[int],
    progress: Progress | None = None,
) -> list[list[dict[str, float]]]:
    """Train every model of `stack` in place, as `training.fit` would train each alone.

    One ``tf.function`` step updates all M models: model m reads its own batch of
    ``xs[m]``/``ys[m]``, in the order `training.batches` draws from
    ``np.random.default_rng(seeds[m])``; the loss is the sum over models of each model's
    batch-mean loss, so each slice gets exactly its own model's gradient.

    Args:
        stack: The models; their variables are updated.
        xs: Model m's inputs ``(N, d)`` in row m (an array ``(M, N, d)`` or a sequence of M arrays).
        ys: Model m's head indices ``(N,)`` in row m.
        train: Epochs, batch size, optimizer and loss (shared by every model).
        seeds: Batch-order seed per model (what `training.fit` takes as ``seed``).
        progress: Called after every epoch with the mean over models of ``loss`` and ``acc``.

    Returns:
        Per model, one dict per epoch with ``loss`` and ``acc`` on its training batches (as `fit`).

    Raises:
        ConfigError: If the number of inputs, labels or seeds is not the stack's model count, or
            the models' training sets differ in size.
    """
    n_models = stack.n_models
    counts = {"xs": len(xs), "ys": len(ys), "seeds": len(seeds)}
    if any(c != n_models for c in counts.values()):
        raise ConfigError(
            f"fit_many trains {n_models} stacked models and needs one entry per model, got "
            + ", ".join(f"{k}: {c}" for k, c in counts.items())
            + "; pass the models' inputs, labels and batch seeds in the stack's model order."
        )
    sizes = [len(x) for x in xs]
    label_sizes = [len(y) for y in ys]
    if len(set(sizes)) != 1 or sizes != label_sizes:
        raise ConfigError(
            f"fit_many steps all models together, so every model needs the same number of training records; "
            f"got inputs {sizes} and labels {label_sizes}. Group the models by training-set size and call "
            "fit_many once per group (or training.fit for a single model)."
        )
    x = np.stack([np.asarray(a, dtype=np.float32) for a in xs])
    y = np.stack([np.asarray(b, dtype=np.int32) for b in ys])
    n = sizes[0]
    if n == 0:
        raise ConfigError("fit_many got empty training sets (0 records per model); nothing to train.")

    opt = optimizer(train)
    variables = stack.trainable_variables
    spec = (
        tf.TensorSpec((n_models, None, *x.shape[2:]), tf.float32),
        tf.TensorSpec((n_models, None), tf.int32),
    )

    @tf.function(input_signature=spec)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = stack(xb)  # (M, b, C)
            per = per_record_loss(tf.reshape(probs, [-1, stack.n_classes]), tf.reshape(yb, [-1]), train.loss)
            losses = tf.reduce_mean(tf.reshape(per, tf.shape(yb)), axis=1)  # each model's batch mean
            loss = tf.reduce_sum(losses)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 2, output_type=tf.int32), yb), tf.float32), axis=1)
        return losses, hits

    rngs = [np.random.default_rng(s) for s in seeds]
    rows = np.arange(n_models)[:, None]
    histories: list[list[dict[str, float]]] = [[] for _ in range(n_models)]
    for epoch in range(train.epochs):
        orders = [batches(n, train.batch_size, rng) for rng in rngs]
        total, hits = np.zeros(n_models), np.zeros(n_models)
        for k in range(len(orders[0])):
            idx = np.stack([order[k] for order in orders])  # (M, b): every model's k-th batch
            losses, h = step(tf.constant(x[rows, idx]), tf.constant(y[rows, idx]))
            total += losses.numpy().astype(np.float64) * idx.shape[1]
            hits += h.numpy()
        for m in range(n_models):
            histories[m].append({"loss": float(total[m]) / n, "acc": float(hits[m]) / n})
        if progress is not None:
            progress(
                epoch + 1,
                train.epochs,
                {"loss": float(np.mean(total)) / n, "acc": float(np.mean(hits)) / n},
            )
    return histories
