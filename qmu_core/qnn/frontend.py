"""The classical part of a model before its circuit: basic QNN or HQNN, one object each.

A `FrontEnd` owns every rule that depends on ``model.kind``:

* what the model reads from a split (`column`: the reduced features ``x``, or the ``pixels``)
  and whether the circuit reads the split's features as they are (`reads_features`: only then
  can the hardware path run the model, and only then does an export carry the feature map);
* its variables (`initial_variables`) and its forward pass to the circuit's features
  (`forward`), where the model's `qmu_core.qnn.encoding.Encoding` squashes the CNN output;
* the export recipe's steps up to the circuit (`recipe`).

The front ends are `BASIC` (``basic_qnn``: identity on the PCA features of
`qmu_core.features`) and `CNN` (``hqnn``: Conv 5x5 -> ReLU -> MaxPool 2 -> Dense ->
LeakyReLU(0.01), trained with the circuit); `model_front_end` looks them up.

This module imports no TensorFlow at import time (the study side reads it); `forward` imports
it when called, inside a model's forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qmu_core.qnn.encoding import Encoding, model_encoding

if TYPE_CHECKING:
    from qmu_core.config import ModelConfig

__all__ = ["BASIC", "CNN", "FRONT_ENDS", "BasicFrontEnd", "CNNFrontEnd", "FrontEnd", "glorot", "model_front_end"]


def glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot-uniform initial values (float32) drawn from `rng`."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


class FrontEnd(ABC):
    """The classical part before the circuit (module doc). Instances are stateless; use `FRONT_ENDS`."""

    kind: ClassVar[str]
    """``model.kind``'s value."""

    column: ClassVar[str]
    """The split column the model reads."""

    reads_features: ClassVar[bool]
    """The circuit reads the split's features ``x`` directly (no trained classical layer)."""

    @abstractmethod
    def initial_variables(self, rng: np.random.Generator, model: ModelConfig, image_side: int) -> dict[str, np.ndarray]:
        """The front end's variables, drawn from `rng` (after the circuit's and the head's)."""

    @abstractmethod
    def forward(self, variables: Mapping[str, Any], inputs: Any, model: ModelConfig, image_side: int) -> Any:
        """The circuit's features ``(B, width)`` of a batch of model inputs (TensorFlow)."""

    @abstractmethod
    def recipe(self, encoding: Encoding) -> list[str]:
        """The export recipe's steps from the scaled pixels to what the circuit reads."""


class BasicFrontEnd(FrontEnd):
    """The basic QNN: the split's PCA features go into the circuit as they are."""

    kind = "basic_qnn"
    column = "x"
    reads_features = True

    def initial_variables(self, rng: np.random.Generator, model: ModelConfig, image_side: int) -> dict[str, np.ndarray]:
        """No variables: the basic QNN has no classical layer."""
        return {}

    def forward(self, variables: Mapping[str, Any], inputs: Any, model: ModelConfig, image_side: int) -> Any:
        """The inputs themselves: the PCA features go into the circuit as they are."""
        return inputs

    def recipe(self, encoding: Encoding) -> list[str]:
        """The PCA projection, then the encoding's step from PCA coordinates."""
        return [
            "z = (pixels - mean) @ component.T  (features.parquet; one `component` row per feature).",
            encoding.pca_recipe,
        ]


class CNNFrontEnd(FrontEnd):
    """The HQNN: a CNN on the pixels, trained with the circuit, feeds the encoding."""

    kind = "hqnn"
    column = "pixels"
    reads_features = False

    def initial_variables(self, rng: np.random.Generator, model: ModelConfig, image_side: int) -> dict[str, np.ndarray]:
        """The CNN's convolution and dense kernels (Glorot-uniform, from `rng`) and zero biases."""
        f = model.cnn_filters
        pooled = (image_side // 2) ** 2 * f
        width = model_encoding(model).width(model.n_qubits)  # what the encoding reads: n angles or 2^n amplitudes
        return {
            "conv_k": glorot(rng, (5, 5, 1, f), 25, 25 * f),
            "conv_b": np.zeros(f, dtype=np.float32),
            "dense_w": glorot(rng, (pooled, width), pooled, width),
            "dense_b": np.zeros(width, dtype=np.float32),
        }

    def forward(self, variables: Mapping[str, Any], inputs: Any, model: ModelConfig, image_side: int) -> Any:
        """The CNN on the images, squashed by the model's encoding into the circuit's features."""
        from qmu_core._tf import tf

        img = tf.reshape(inputs, (-1, image_side, image_side, 1))
        h = tf.nn.relu(tf.nn.conv2d(img, variables["conv_k"], 1, "SAME") + variables["conv_b"])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(h, (tf.shape(h)[0], -1))
        h = tf.nn.leaky_relu(h @ variables["dense_w"] + variables["dense_b"], alpha=0.01)
        return model_encoding(model).squash(h)

    def recipe(self, encoding: Encoding) -> list[str]:
        """The CNN's layers, then the encoding's step from the CNN output."""
        return [
            "h = LeakyReLU_0.01(flatten(MaxPool2(ReLU(Conv5x5_same(2*pixels-1, conv_k) + conv_b))) "
            "@ dense_w + dense_b) (weights.parquet, NHWC).",
            encoding.cnn_recipe,
        ]


BASIC = BasicFrontEnd()
CNN = CNNFrontEnd()

FRONT_ENDS: dict[str, FrontEnd] = {f.kind: f for f in (BASIC, CNN)}
"""Every front end by ``model.kind`` value."""


def model_front_end(model: ModelConfig) -> FrontEnd:
    """The front end of the model section `model` (``model.kind`` is validated by the config).

    A model plug-in (`qmu_core.plugins`) reads the PCA features as they are, like the basic QNN.
    """
    return FRONT_ENDS.get(model.kind, BASIC)
