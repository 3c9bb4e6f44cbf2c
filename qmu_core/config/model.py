"""The `model` and `train` sections, and the features a model needs from the data stage."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from qmu_core import plugins
from qmu_core.config.form import Section

__all__ = ["AMPLITUDE_MAX_QUBITS", "BUILTIN_KINDS", "MODEL_KINDS", "FeatureSpec", "ModelConfig", "TrainConfig"]

BUILTIN_KINDS: tuple[str, ...] = ("basic_qnn", "hqnn")
"""The model kinds QMU itself defines (`qmu_core.qnn.frontend`)."""

MODEL_KINDS: tuple[str, ...] = BUILTIN_KINDS + tuple(
    n for n in plugins.installed(plugins.MODELS) if n not in BUILTIN_KINDS
)
"""Every ``model.kind``: the built-in kinds, then the installed model plug-ins' registered names
(`qmu_core.plugins`; read from entry-point metadata when this module is imported, without importing
any plug-in). Any other value fails validation before anything is imported."""

_KindLiteral: Any = Literal[MODEL_KINDS]

AMPLITUDE_MAX_QUBITS = 12
"""Widest amplitude-encoded circuit. Its state preparation is ``2^n - 1`` rotations and as many
CNOTs per record, so a training epoch on TFQ grows from 11x the dense limit at 9 qubits to 37x
at 12 (`bench/train_speed.py`; up to 8 qubits QMU's native op starts from the encoded states
instead and stays under 1x); at 12 qubits a default-sized model already takes about 17 minutes."""


class FeatureSpec(Section):
    """How pixels are reduced to circuit inputs; derived from the model section."""

    encoding: Literal["angle", "amplitude"] = "angle"
    n_components: int = 8


class ModelConfig(Section):
    """The quantum classifier: basic QNN or hybrid CNN+QNN, encoding and ansatz size."""

    kind: _KindLiteral = Field(
        "basic_qnn",
        description=(
            "`basic_qnn`: PCA features into the circuit; `hqnn`: a CNN front end feeds it; any other "
            "choice is an installed model plug-in (entry point `qmu.models`), fed PCA features, one per input symbol."
        ),
    )
    encoding: Literal["angle", "amplitude"] = Field(
        "angle",
        description=(
            "`angle`: one feature per qubit as an Ry angle (runs on devices); `amplitude`: 2^n "
            "features as the amplitudes of n qubits (the paper's simulation)."
        ),
    )
    n_qubits: int = Field(
        8,
        strict=True,
        ge=2,
        le=16,
        description="Qubits in the circuit: up to 16 with angle encoding, 12 with amplitude encoding.",
    )
    layers: int = Field(5, strict=True, ge=1, le=40, description="Ansatz layers: rotations then a CNOT ring.")
    reupload: bool = Field(
        False, strict=True, description="Angle encoding only: re-encode the features before every layer."
    )
    init: Literal["normal", "uniform_pi"] = Field(
        "normal", description="Circuit weight init: N(0, 1) (basic QNN) or U(-pi, pi) (HQNN)."
    )
    cnn_filters: int = Field(5, strict=True, ge=1, le=64, description="HQNN only: Conv2D filters (5x5, same).")
    backend: Literal["tfq_packed", "tfq"] = Field(
        "tfq_packed",
        description=(
            "How TFQ's qsim ops evaluate the circuit (same numbers either way): `tfq_packed` packs "
            "many records into one program to cut TFQ's per-record overhead; `tfq` is the plain "
            "one-program-per-record Expectation layer."
        ),
    )

    @model_validator(mode="after")
    def _reupload_needs_angle(self) -> ModelConfig:
        if self.reupload and self.encoding != "angle":
            raise ValueError(
                "model.reupload=true needs model.encoding='angle'; amplitude encoding prepares "
                "the state once. Set one of the two differently."
            )
        return self

    @model_validator(mode="after")
    def _amplitude_width(self) -> ModelConfig:
        if self.encoding == "amplitude" and self.n_qubits > AMPLITUDE_MAX_QUBITS:
            raise ValueError(
                f"model.n_qubits={self.n_qubits} with model.encoding='amplitude' would load 2^{self.n_qubits} "
                f"features through 2^{self.n_qubits} - 1 rotations per record; amplitude encoding stops at "
                f"{AMPLITUDE_MAX_QUBITS} qubits. Use n_qubits <= {AMPLITUDE_MAX_QUBITS}, "
                "or encoding='angle' (up to 16)."
            )
        return self

    @model_validator(mode="after")
    def _plugin_angle(self) -> ModelConfig:
        if self.is_plugin and (self.encoding != "angle" or self.reupload):
            raise ValueError(
                f"model.kind={self.kind!r} is a model plug-in: its circuit loads each feature as an angle where it "
                "chooses (re-uploading included), so it needs model.encoding='angle' and model.reupload=false."
            )
        return self

    @property
    def is_plugin(self) -> bool:
        """Whether ``kind`` names a model plug-in rather than a built-in kind."""
        return self.kind not in BUILTIN_KINDS

    @property
    def feature_spec(self) -> FeatureSpec:
        """Reduced features the data stage must produce for this model.

        A plug-in model reads one angle per input symbol; finding their number loads the plug-in.
        """
        if self.is_plugin:
            return FeatureSpec(encoding="angle", n_components=len(plugins.circuit_model(self).input_symbols))
        n = self.n_qubits if self.encoding == "angle" else 2**self.n_qubits
        return FeatureSpec(encoding=self.encoding, n_components=n)


class TrainConfig(Section):
    """How the target, shadow and oracle models are trained (the same recipe for all)."""

    epochs: int = Field(10, strict=True, ge=1, le=500, description="Passes over the training set.")
    batch_size: int = Field(32, strict=True, ge=1, le=4096, description="Records per gradient step.")
    learning_rate: float = Field(0.05, strict=True, gt=0, le=10, description="Step size.")
    optimizer: Literal["sgd", "nesterov", "adam"] = Field(
        "adam",
        description=(
            "`adam` (our default: converges in few epochs); `nesterov`: SGD with Nesterov "
            "momentum (the paper's basic QNN); `sgd`: SGD with momentum (the paper's HQNN)."
        ),
    )
    momentum: float = Field(0.9, strict=True, ge=0, lt=1, description="Momentum for `sgd` and `nesterov`.")
    loss: Literal["bce_sum", "cross_entropy"] = Field(
        "cross_entropy",
        description=(
            "`bce_sum`: sum over classes of binary cross-entropy on the softmax outputs (paper, "
            "basic QNN); `cross_entropy`: categorical cross-entropy (paper, HQNN)."
        ),
    )
