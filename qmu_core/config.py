"""The one typed configuration object, its sections, presets and seed derivation.

`QMUConfig` is the only parameter of every flow, so the Prefect UI renders it as a form.
Every field has a default and a description; sections are frozen and reject unknown keys.
Nothing here imports TensorFlow or Prefect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qmu_core.errors import ConfigError

__all__ = [
    "AttackConfig",
    "DataConfig",
    "FeatureSpec",
    "ModelConfig",
    "PRESETS",
    "Progress",
    "QMUConfig",
    "RunConfig",
    "TrainConfig",
    "UnlearnConfig",
    "apply_overrides",
    "derive_seed",
    "preset",
]


# Progress callback of long loops: (epoch, epochs, metrics of that epoch).
Progress = Callable[[int, int, dict[str, float]], None]


class Section(BaseModel):
    """Base for config sections: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class RunConfig(Section):
    """Where a run writes and which root seed it derives every other seed from."""

    seed: int = Field(0, ge=0, description="Root seed; every model and stage derives its own.")
    artifact_root: Path = Field(
        Path("data/artifacts"),
        description="Directory that receives every artifact of the run (Parquet, JSON, plots).",
    )


class DataConfig(Section):
    """Which images are used and how records are split into roles."""

    dataset: Literal["digits", "mnist", "synthetic"] = Field(
        "digits",
        description=(
            "`digits` ships inside scikit-learn (8x8 images, works offline); `mnist` reads IDX "
            "`*-ubyte.gz` files or `mnist.npz` from `mnist_path` (or downloads through Keras); "
            "`synthetic` draws Gaussian blobs for tests."
        ),
    )
    mnist_path: str | None = Field(
        None,
        description=(
            "Directory holding MNIST (`t10k-images-idx3-ubyte.gz` + labels, optionally the "
            "`train-*` pair, or `mnist.npz`). Empty: `data/raw/mnist`, then Keras' cache/download."
        ),
    )
    classes: tuple[int, ...] = Field(
        tuple(range(10)), min_length=2, description="Labels kept; the model has one output each."
    )
    forget_class: int = Field(4, description="Training records with this label form the forget set.")
    n_target_train: int = Field(500, ge=8, description="Target members: the target's training set.")
    n_target_holdout: int = Field(
        250, ge=4, description="Target non-members: held out, the attack's negative control."
    )
    n_shadow_pool: int = Field(
        700, ge=8, description="Disjoint pool the attacker draws shadow training sets from."
    )
    n_test: int = Field(300, ge=4, description="Test records for retain/forget accuracy.")

    @model_validator(mode="after")
    def _forget_class_is_kept(self) -> DataConfig:
        if self.forget_class not in self.classes:
            raise ValueError(
                f"data.forget_class={self.forget_class} is not in data.classes="
                f"{list(self.classes)}; pick one of those labels or add it to `data.classes`."
            )
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"data.classes={list(self.classes)} repeats a label; list each once.")
        return self

    @property
    def n_records(self) -> int:
        """Records drawn in total across the four roles."""
        return self.n_target_train + self.n_target_holdout + self.n_shadow_pool + self.n_test


class FeatureSpec(Section):
    """How pixels are reduced to circuit inputs; derived from the model section."""

    encoding: Literal["angle", "amplitude"] = "angle"
    n_components: int = 8


class ModelConfig(Section):
    """The quantum classifier: basic QNN or hybrid CNN+QNN, encoding and ansatz size."""

    kind: Literal["basic_qnn", "hqnn"] = Field(
        "basic_qnn",
        description="`basic_qnn`: PCA features into the circuit; `hqnn`: a CNN front end feeds it.",
    )
    encoding: Literal["angle", "amplitude"] = Field(
        "angle",
        description=(
            "`angle`: one feature per qubit as an Ry angle (runs on devices); `amplitude`: 2^n "
            "features as the amplitudes of n qubits (the paper's simulation)."
        ),
    )
    n_qubits: int = Field(8, ge=2, le=12, description="Qubits in the circuit.")
    layers: int = Field(5, ge=1, le=40, description="Ansatz layers: rotations then a CNOT ring.")
    reupload: bool = Field(
        False, description="Angle encoding only: re-encode the features before every layer."
    )
    init: Literal["normal", "uniform_pi"] = Field(
        "normal", description="Circuit weight init: N(0, 1) (basic QNN) or U(-pi, pi) (HQNN)."
    )
    cnn_filters: int = Field(5, ge=1, le=64, description="HQNN only: Conv2D filters (5x5, same).")
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

    @property
    def feature_spec(self) -> FeatureSpec:
        """Reduced features the data stage must produce for this model."""
        n = self.n_qubits if self.encoding == "angle" else 2**self.n_qubits
        return FeatureSpec(encoding=self.encoding, n_components=n)


class TrainConfig(Section):
    """How the target, shadow and oracle models are trained (the same recipe for all)."""

    epochs: int = Field(10, ge=1, le=500, description="Passes over the training set.")
    batch_size: int = Field(32, ge=1, le=4096, description="Records per gradient step.")
    learning_rate: float = Field(0.05, gt=0, le=10, description="Step size.")
    optimizer: Literal["sgd", "nesterov", "adam"] = Field(
        "adam",
        description=(
            "`adam` (our default: converges in few epochs); `nesterov`: SGD with Nesterov "
            "momentum (the paper's basic QNN); `sgd`: SGD with momentum (the paper's HQNN)."
        ),
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="Momentum for `sgd` and `nesterov`.")
    loss: Literal["bce_sum", "cross_entropy"] = Field(
        "cross_entropy",
        description=(
            "`bce_sum`: sum over classes of binary cross-entropy on the softmax outputs (paper, "
            "basic QNN); `cross_entropy`: categorical cross-entropy (paper, HQNN)."
        ),
    )


class AttackConfig(Section):
    """The gray-box shadow-model membership inference attack."""

    n_shadow: int = Field(4, ge=1, le=64, description="Shadow models, each on half the pool.")
    classifier: Literal["mlp", "logistic"] = Field(
        "mlp", description="`mlp`: 64-64 ReLU network (the paper's attack); `logistic` regression."
    )
    max_iter: int = Field(1000, ge=10, description="Attack classifier training iterations.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Score above which a record is 'member'.")


class UnlearnConfig(Section):
    """Gradient ascent on the forget set (the retrain oracle uses `train`)."""

    method: Literal["ga"] = Field("ga", description="`ga`: gradient ascent on the forget set.")
    learning_rate: float = Field(0.05, gt=0, le=10, description="Ascent step size.")
    batch_size: int = Field(32, ge=1, le=4096, description="Forget records per ascent step.")
    max_epochs: int = Field(10, ge=1, le=500, description="Upper bound on passes over the forget set.")
    stop_forget_acc: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Stop once accuracy on the forget set falls to this (checked after each pass).",
    )


class QMUConfig(Section):
    """Everything one run depends on. It is also the flow's only parameter."""

    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    attack: AttackConfig = AttackConfig()
    unlearn: UnlearnConfig = UnlearnConfig()


def derive_seed(root: int, *labels: str | int) -> int:
    """Stable 31-bit child seed for one model or stage, independent of call order."""
    text = "/".join([str(root), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


# --------------------------------------------------------------------------- presets


def _tiny() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "digits",
            "classes": [0, 1, 4, 7],
            "n_target_train": 120,
            "n_target_holdout": 60,
            "n_shadow_pool": 120,
            "n_test": 60,
        },
        "model": {"n_qubits": 4, "layers": 2},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.1},
        "attack": {"n_shadow": 2, "max_iter": 300},
        "unlearn": {"max_epochs": 5, "learning_rate": 0.5},
    }


def _default() -> dict[str, Any]:
    return {}


def _paper() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "mnist",
            "n_target_train": 1000,
            "n_target_holdout": 500,
            "n_shadow_pool": 2000,
            "n_test": 1000,
        },
        "model": {"kind": "basic_qnn", "encoding": "amplitude", "n_qubits": 8, "layers": 10},
        "train": {
            "epochs": 20,
            "batch_size": 32,
            "learning_rate": 0.05,
            "optimizer": "nesterov",
            "loss": "bce_sum",
        },
        "attack": {"n_shadow": 4},
        "unlearn": {"learning_rate": 0.05, "batch_size": 32},
    }


def _paper_hqnn() -> dict[str, Any]:
    cfg = _paper()
    cfg["model"] = {
        "kind": "hqnn",
        "encoding": "amplitude",
        "n_qubits": 8,
        "layers": 1,
        "init": "uniform_pi",
    }
    cfg["train"] = {
        "epochs": 25,
        "batch_size": 8,
        "learning_rate": 0.1,
        "optimizer": "sgd",
        "loss": "cross_entropy",
    }
    cfg["unlearn"] = {"learning_rate": 0.01, "batch_size": 16, "max_epochs": 6}
    return cfg


PRESETS: dict[str, Any] = {
    "tiny": _tiny,
    "default": _default,
    "paper": _paper,
    "paper_hqnn": _paper_hqnn,
}


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _validate(raw: dict[str, Any], what: str) -> QMUConfig:
    try:
        return QMUConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(config)"
            lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError(
            f"{what} is not a valid QMU config:\n" + "\n".join(lines) + "\n"
            "See `qmu config schema` for every field, its type and its default."
        ) from None


def preset(name: str, **overrides: Any) -> QMUConfig:
    """Build a preset config, optionally with nested overrides (`run={"seed": 1}`)."""
    if name not in PRESETS:
        raise ConfigError(
            f"Unknown preset {name!r}. Choose one of: {', '.join(PRESETS)}."
        )
    raw = _deep_merge(PRESETS[name](), overrides)
    return _validate(raw, f"preset {name!r}")


def _parse_value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lower() in {"none", "null"}:
            return None
        return text


def apply_overrides(config: QMUConfig, assignments: list[str]) -> QMUConfig:
    """Apply `section.field=value` strings (values parsed as JSON, else as text)."""
    raw = config.model_dump(mode="json")
    for item in assignments:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r} has no '='. Write it as section.field=value, "
                "for example `--set train.epochs=3`."
            )
        path, _, value = item.partition("=")
        parts = path.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(node) if isinstance(node, dict) else "(none)"
                raise ConfigError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])!r} is not a config section. "
                    f"Known here: {known}."
                )
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            known = ", ".join(node) if isinstance(node, dict) else "(none)"
            raise ConfigError(
                f"--set {item!r}: {path!r} is not a config field. Known here: {known}."
            )
        node[parts[-1]] = _parse_value(value.strip())
    return _validate(raw, "The config after --set overrides")


def reference_markdown() -> str:
    """The README's configuration reference: one table per section, from the field metadata."""
    import json

    lines: list[str] = []
    for section, field in QMUConfig.model_fields.items():
        cls = field.annotation
        assert cls is not None and cls.__doc__ is not None
        lines += ["", f"**`{section}`**: {cls.__doc__.strip().splitlines()[0]}", ""]
        lines += ["| field | default | meaning |", "|---|---|---|"]
        for name, f in cls.model_fields.items():  # type: ignore[union-attr]
            d = f.default
            text = json.dumps(list(d)) if isinstance(d, tuple) else ("null" if d is None else str(d))
            text = text if len(text) <= 30 else text[:27] + "..."
            lines.append(f"| `{section}.{name}` | `{text}` | {f.description} |")
    return "\n".join(lines).lstrip("\n") + "\n"
