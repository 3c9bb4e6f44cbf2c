"""The one typed configuration object, its sections and seed derivation.

Presets live in `qmu_core.presets`, ``--set`` parsing in `qmu_core.overrides`, the README's
reference table in `qmu_core.docs`.

`QMUConfig` is the only parameter of every flow, so the Prefect UI renders it as a form.
Every field has a default and a description; sections are frozen and reject unknown keys.
Numbers and switches are strict: an int field takes only a JSON integer (not ``true``, ``3.0``
or ``"3"``), a float field a JSON number, a bool field ``true``/``false``.
`check_artifact_root` is the one check that looks at the file system or a URL root (the CLI runs it before a run).
Nothing here imports TensorFlow or Prefect.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from qmu_core.errors import ConfigError

__all__ = [
    "ATTACK_NAMES",
    "AttackConfig",
    "DataConfig",
    "EmulatorSampler",
    "FeatureSpec",
    "GoogleEngineSampler",
    "GoogleNoisyQVMSampler",
    "GoogleVirtualSampler",
    "HardwareConfig",
    "ModelConfig",
    "PROCESSORS",
    "QMUConfig",
    "QsimNoisySampler",
    "QsimSampler",
    "SAMPLER_CLASSES",
    "SAMPLER_KINDS",
    "SamplerConfig",
    "RunConfig",
    "Section",
    "TrainConfig",
    "UnlearnConfig",
    "PresetName",
    "check_artifact_root",
    "derive_seed",
]

# Labels of the built-in datasets, known without loading them (MNIST files are checked at split time).
KNOWN_LABELS = {"digits": range(10), "synthetic": range(10)}


SECTION_TITLES = {
    "run": "Run",
    "data": "Data",
    "model": "Model",
    "train": "Training",
    "attack": "Membership attacks",
    "unlearn": "Unlearning",
    "hardware": "Hardware (finite shots)",
}
"""The form's heading of each `QMUConfig` section (the class names would show otherwise)."""

SAMPLER_TITLES = {
    "qsim": "qsim: noiseless shots",
    "qsim_noisy": "qsim_noisy: simple noise model",
    "google_virtual": "google_virtual: a processor's noiseless virtual engine",
    "google_noisy_qvm": "google_noisy_qvm: a processor's noisy virtual machine",
    "google_engine": "google_engine: the real Google Quantum Engine",
    "emulator": "emulator: exact noisy distributions",
}
"""The form's label of each sampler variant (`hardware.sampler`)."""


def _form_text(text: str) -> str:
    """A description as both Prefect UIs show it: no Markdown backticks (the V2 UI prints them)
    and no angle brackets (the V1 UI drops ``<...>`` as HTML)."""
    text = re.sub(r"<([^<>\s]*)>", r"⟨\1⟩", text.replace("`", ""))
    return text.replace(" > ", " above ").replace(" < ", " below ").replace("<", "‹").replace(">", "›")


def _form_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """The JSON schema the Prefect form renders: no field-level defaults, each field's value in
    every preset added to its description instead.

    Prefect's form fills every field it shows with the schema's default before sending a run,
    which would override the chosen `preset` field with the class defaults. Without schema
    defaults, the fields a user leaves empty are not sent and come from the preset.

    A bool field is offered as a choice between ``true`` and ``false`` (``enum``, no ``type``)
    that starts empty: Prefect's older UI (``/deployments``) draws a ``"type": "boolean"`` as
    a switch and sends it as ``false`` untouched, which overrode presets that set it ``true``.
    Both UIs send an untouched choice not at all and a chosen one as a JSON boolean, which
    the server's schema check and the field itself (strict bool) accept; either UI's ⋮ menu
    "Omit value" returns it to the preset. Measured in both UIs: tests/e2e/test_ui_browser.py.
    """
    from qmu_core.presets import preset_values

    if "description" in schema:
        schema["description"] = _form_text(schema["description"])
    kind = schema.get("properties", {}).get("kind", {})
    if "const" in kind:  # a variant of a tagged union (hardware.sampler): the form must send its tag
        schema["required"] = sorted({*schema.get("required", []), "kind"})
        kind["default"] = kind["const"]  # the form fills it in (both UIs leave a bare const empty)
        schema["title"] = SAMPLER_TITLES.get(kind["const"], schema.get("title", ""))
    for name, prop in schema.get("properties", {}).items():
        if cls is QMUConfig and name in SECTION_TITLES:
            prop["title"] = SECTION_TITLES[name]
        if prop.get("type") == "boolean":
            prop.pop("type")
            prop["enum"] = [True, False]
        if "default" not in prop or "const" in prop:
            if "description" in prop:
                prop["description"] = _form_text(prop["description"])
            continue
        prop.pop("default")
        values = "" if cls is QMUConfig else preset_values(cls, name)  # sections, the preset choice
        text = prop.get("description", "").rstrip()
        if values and re.search(r"(?i)\bempty\b", text):  # it says what empty means (None: another field)
            if values != "null":
                listed = values.removeprefix("the preset's value (").removesuffix(")")
                text += f" Presets: {listed}."
        elif values:
            text += f" Empty: {values}."
        if text:
            prop["description"] = _form_text(text)


class Section(BaseModel):
    """Base for config sections: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_form_schema)


class RunConfig(Section):
    """Where a run writes and which root seed it derives every other seed from."""

    seed: int = Field(0, strict=True, ge=0, description="Root seed; every model and stage derives its own.")
    workers: int = Field(
        0,
        strict=True,
        ge=0,
        le=64,
        description=(
            "Processes that train models side by side (TensorFlow does not scale in threads); 0: one per core. "
            "With `task_runner: dask` and no `dask_address`: the local Dask cluster's worker processes."
        ),
    )
    task_runner: Literal["local", "dask"] = Field(
        "local",
        description=(
            "Where stages run. `local`: threads of the flow's process, with model training in `workers` "
            "processes. `dask`: Dask workers (prefect-dask's DaskTaskRunner), each stage in one worker "
            "process; a local cluster of `workers` single-threaded processes, or the cluster at `dask_address`."
        ),
    )
    dask_address: str | None = Field(
        None,
        description=(
            "Scheduler of an existing Dask cluster, e.g. `tcp://10.0.0.5:8786` (only with `task_runner: dask`). "
            "Its workers need the same install and must reach `artifact_root` and the Prefect API (README: Dask)."
        ),
    )
    artifact_root: str = Field(
        "data/artifacts",
        description=(
            "Where every artifact of the run goes (Parquet, JSON, plots): a local directory, or any fsspec URL "
            "that workers on other machines can reach, e.g. `s3://my-bucket/qmu` (needs s3fs), `gs://...` "
            "(gcsfs) or `file:///mnt/shared/qmu`. A URL root is read and written through a local mirror "
            "(`$QMU_ARTIFACT_CACHE`, default `~/.cache/qmu/roots`)."
        ),
        examples=["data/artifacts", "s3://my-bucket/qmu"],
    )

    @field_validator("artifact_root", mode="before")
    @classmethod
    def _root_is_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"run.artifact_root={value!r} is empty, which would scatter artifacts over the current "
                "directory. Give a directory, for example `--set run.artifact_root=data/artifacts` "
                "(or `.` if you really mean the current directory)."
            )
        return str(value) if isinstance(value, Path) else value


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
    classes: tuple[StrictInt, ...] = Field(
        tuple(range(10)), min_length=2, description="Labels kept; the model has one output each."
    )
    forget: Literal["class", "samples"] = Field(
        "class",
        description=(
            "The deletion request: `class`, every training record of `forget_class` (the paper's setting); "
            '`samples`, the training records listed in `forget_ids` ("delete these users").'
        ),
    )
    forget_class: int = Field(
        4, strict=True, description="Class requests: training records with this label form the forget set."
    )
    forget_ids: tuple[StrictInt, ...] = Field(
        (),
        description=(
            "Sample requests: the `sample_id`s to delete (dataset indices of target training records; a run's "
            "splits Parquet lists them with role `target_train`)."
        ),
    )
    n_target_train: int = Field(500, strict=True, ge=8, description="Target members: the target's training set.")
    n_target_holdout: int = Field(
        250, strict=True, ge=4, description="Target non-members: held out, the attack's negative control."
    )
    n_shadow_pool: int = Field(
        700, strict=True, ge=8, description="Disjoint pool the attacker draws shadow training sets from."
    )
    n_test: int = Field(300, strict=True, ge=4, description="Test records for retain/forget accuracy.")

    @model_validator(mode="after")
    def _forget_class_is_kept(self) -> DataConfig:
        if self.forget_class not in self.classes:
            raise ValueError(
                f"data.forget_class={self.forget_class} is not in data.classes="
                f"{list(self.classes)}; pick one of those labels or add it to `data.classes`."
            )
        if self.forget == "samples" and not self.forget_ids:
            raise ValueError(
                "data.forget='samples' is an empty deletion request: data.forget_ids lists no sample_id. List "
                "the target training records to delete, e.g. data.forget_ids=[12, 345], or use data.forget='class'."
            )
        if self.forget == "class" and self.forget_ids:
            raise ValueError(
                f"data.forget_ids lists {len(self.forget_ids)} sample_ids but data.forget='class' deletes class "
                f"{self.forget_class}: set data.forget='samples' to delete those records, or clear data.forget_ids."
            )
        repeated = sorted(i for i, n in Counter(self.forget_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"data.forget_ids repeats sample_ids {repeated[:10]}; list each record once.")
        if any(i < 0 for i in self.forget_ids):
            raise ValueError("data.forget_ids has negative sample_ids; sample_ids are dataset indices 0, 1, 2, ...")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"data.classes={list(self.classes)} repeats a label; list each once.")
        negative = [c for c in self.classes if c < 0]
        if negative:
            raise ValueError(
                f"data.classes={list(self.classes)} has negative labels {negative}; dataset labels are "
                "0, 1, 2, ...: remove them."
            )
        known = KNOWN_LABELS.get(self.dataset)
        unknown = [c for c in self.classes if known is not None and c not in known]
        if known is not None and unknown:
            raise ValueError(
                f"data.classes={list(self.classes)} has labels {unknown} that data.dataset="
                f"{self.dataset!r} does not have (its labels are {known.start}..{known.stop - 1}); "
                "remove them, or the model gets an output no record ever trains."
            )
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
    n_qubits: int = Field(8, strict=True, ge=2, le=12, description="Qubits in the circuit.")
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

    @property
    def feature_spec(self) -> FeatureSpec:
        """Reduced features the data stage must produce for this model."""
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


ATTACK_NAMES = ("gap", "paper", "loss", "lira_offline", "lira_online", "rmia")
"""Every membership attack QMU runs (`qmu_core.attacks`), in report order."""


class AttackConfig(Section):
    """The membership audit: reference models, threat model and the attacks' settings."""

    n_shadow: int = Field(
        8, strict=True, ge=1, le=64, description="Reference (shadow) models; each is its own cached training."
    )
    reference: Literal["disjoint", "population"] = Field(
        "population",
        description=(
            "What reference models train on. `disjoint` (the paper's gray-box setting): random halves of "
            "the attacker's own pool, never an audited record, so only offline attacks apply. "
            "`population` (LiRA's setting): random halves of every candidate record (target members, "
            "non-members and the pool), so online LiRA and RMIA see models trained with and without "
            "each audited record."
        ),
    )
    threat_model: Literal["probs", "expectations", "labels"] = Field(
        "probs",
        description=(
            "What the attacker observes per record: `probs`, the class probabilities and the true label "
            "(gray-box, the paper's); `expectations`, the circuit's raw <Z> read-out and the label; "
            "`labels`, only whether the prediction is right."
        ),
    )
    headline: Literal["gap", "paper", "loss", "lira_offline", "lira_online", "rmia"] = Field(
        "lira_online",
        description="The attack behind the top-level `mia_*` numbers of the summary and the plot.",
    )
    protocol: Literal["shadow", "paper"] = Field(
        "shadow",
        description=(
            "How the `paper` attack's MLP is trained: `shadow`, on the reference models' outputs (sound); "
            "`paper`, on the target's own members and non-members (80% of them), as the paper did, so "
            "its numbers can be reproduced (most audited records are then in the attack's training set)."
        ),
    )
    classifier: Literal["mlp", "logistic"] = Field(
        "mlp", description="`paper` attack: `mlp`, the 64-64 ReLU network (the paper's); `logistic` regression."
    )
    max_iter: int = Field(1000, strict=True, ge=10, description="`paper` attack: classifier training iterations.")
    threshold: float = Field(
        0.5, strict=True, gt=0, lt=1, description="`paper` attack: score above which a record is 'member'."
    )
    lira_fixed_variance: bool = Field(
        True,
        strict=True,
        description=(
            "LiRA: one variance shared by all records (Carlini et al.'s choice for few reference models) "
            "instead of one per record."
        ),
    )
    rmia_gamma: float = Field(1.0, strict=True, gt=0, le=100, description="RMIA: likelihood-ratio bar gamma.")
    rmia_offline_a: float = Field(
        0.3,
        strict=True,
        ge=0,
        le=1,
        description="RMIA without IN models: Pr(x) = ((1+a) Pr_OUT(x) + (1-a)) / 2 (Zarifzadeh et al.).",
    )


UNLEARN_METHODS = ("ga", "ssd", "rga", "salun", "finetune")
"""Unlearning methods (`qmu_core.unlearning`), in report order. The retrain oracle and the
no-op baseline (the model before unlearning) are always part of the comparison."""


class UnlearnConfig(Section):
    """The unlearning methods compared against the retrain oracle, and their hyperparameters.

    Stopping rule, fixed before any method runs: the iterative methods (GA, RGA, SalUn) stop
    after the first pass whose forget-set training accuracy is at or below the request's target
    (`stop_forget_acc` for a class; the model's own accuracy on held-out records for a list of
    sample_ids), or after `max_epochs` passes. SSD is one dampening step, fine-tune a fixed
    number of epochs; all report whether they reached the target.
    """

    methods: tuple[Literal["ga", "ssd", "rga", "salun", "finetune"], ...] = Field(
        UNLEARN_METHODS,  # type: ignore[arg-type]
        min_length=1,
        description=(
            "Methods to run, each from the trained model: `ga` gradient ascent; `ssd` selective synaptic "
            "dampening (Fisher importance); `rga` relative gradient ascent (importance-weighted ascent on the "
            "forget set plus descent on the retained set); `salun` saliency-masked random-label unlearning; "
            "`finetune` training on the retained set only. The retrain oracle and the no-op baseline always run."
        ),
    )
    seeds: int = Field(
        1,
        strict=True,
        ge=1,
        le=20,
        description=(
            "Repeats of the comparison. Repeat k > 0 retrains the target and the oracle from another seed and "
            "unlearns again (the split and the attacks stay fixed); the report gives means with 95% CIs."
        ),
    )
    objective: Literal["ascent", "complement"] = Field(
        "complement",
        description=(
            "The forget-set objective of `ga` and `rga`: `complement` (our default), descend on "
            "-log(1 - p(y)) = softplus(logit margin), whose gradient stays near 1 when p(y) is near 1; "
            "`ascent`, ascend the training loss (the paper's rule, kept by the paper presets; its gradient "
            "vanishes on a saturated model)."
        ),
    )
    learning_rate: float = Field(
        0.05, strict=True, gt=0, le=10, description="SGD step size of `ga` (and of `rga`, `salun` unless set)."
    )
    batch_size: int = Field(
        32,
        strict=True,
        ge=1,
        le=4096,
        description="Forget records per step (`ga`, `rga`, `salun`); retained "
        "records per step of `rga`/`salun` and per batch of the Fisher importances.",
    )
    max_epochs: int = Field(
        10, strict=True, ge=1, le=500, description="Upper bound on passes over the forget set (`ga`, `rga`, `salun`)."
    )
    stop_forget_acc: float = Field(
        0.05,
        strict=True,
        ge=0,
        le=1,
        description=(
            "Class requests: stop once accuracy on the forget set falls to this (checked after each pass). "
            "Sample requests stop at the model's accuracy on held-out records instead."
        ),
    )
    ssd_alpha: float = Field(
        10.0,
        strict=True,
        gt=0,
        description="SSD: dampen parameters whose forget importance exceeds alpha x the full-set one.",
    )
    ssd_lambda: float = Field(
        1.0, strict=True, gt=0, description="SSD: dampened parameters are scaled by min(lambda x I_D / I_U, 1)."
    )
    ssd_importance: Literal["fisher", "qfi"] = Field(
        "qfi",
        description=(
            "SSD importance of the circuit weights: `qfi` (default), the diagonal of the circuit's quantum "
            "Fisher information averaged over records; `fisher`, the diagonal empirical Fisher (squared "
            "mini-batch gradients of the log-likelihood), as for every classical parameter. Circuit weights are "
            "rotation angles: dampening one towards 0 is not switching it off, and with `fisher` SSD wrecked "
            "the default model (README)."
        ),
    )
    rga_learning_rate: float | None = Field(
        None, gt=0, le=10, description="RGA's SGD step size; empty: `learning_rate`."
    )
    rga_retain_weight: float = Field(
        1.0,
        strict=True,
        ge=0,
        description="RGA: weight of the descent step on a retained batch beside the forget step (0: ascent only).",
    )
    salun_learning_rate: float | None = Field(
        None, gt=0, le=10, description="SalUn's SGD step size; empty: `learning_rate`."
    )
    salun_sparsity: float = Field(
        0.5,
        strict=True,
        gt=0,
        le=1,
        description="SalUn: fraction of parameters (largest forget-gradient magnitude) the mask lets change.",
    )
    finetune_epochs: int = Field(
        5,
        strict=True,
        ge=1,
        le=500,
        description="Fine-tune: epochs on the retained set (the train optimizer).",
    )
    finetune_learning_rate: float = Field(
        0.01, strict=True, gt=0, le=10, description="Fine-tune: step size on the retained set."
    )
    relearn_max_steps: int = Field(
        200,
        strict=True,
        ge=1,
        le=100000,
        description=(
            "Relearn time: fine-tuning steps on the forget set (train optimizer, `batch_size` records) until "
            "the original forget accuracy returns; counting stops here."
        ),
    )

    def step_size(self, method: str) -> float:
        """The SGD step size of `method`: its own (``rga_learning_rate``, ...) or `learning_rate`."""
        own: float | None = getattr(self, f"{method}_learning_rate", None)
        return self.learning_rate if own is None else own

    def for_stage(self, name: str) -> UnlearnConfig:
        """This section with only the fields stage `name` reads (a method, or ``relearn``); the rest
        at their defaults. Stages are keyed by this, so tuning SSD never re-runs GA, and adding a
        method or a repeat reuses every finished one."""
        keep = _UNLEARN_READS[name]
        return UnlearnConfig(methods=(name,) if name in UNLEARN_METHODS else UNLEARN_METHODS).model_copy(
            update={k: getattr(self, k) for k in keep}
        )


_ITERATIVE = {"objective", "learning_rate", "batch_size", "max_epochs", "stop_forget_acc"}
_UNLEARN_READS: dict[str, set[str]] = {
    "ga": _ITERATIVE,
    "rga": _ITERATIVE | {"rga_retain_weight", "rga_learning_rate"},
    "salun": _ITERATIVE | {"salun_sparsity", "salun_learning_rate"},
    "ssd": {"batch_size", "stop_forget_acc", "ssd_alpha", "ssd_lambda", "ssd_importance"},
    "finetune": {"stop_forget_acc", "finetune_epochs", "finetune_learning_rate"},
    "relearn": {"batch_size", "relearn_max_steps"},
}


PROCESSORS = ("rainbow", "weber", "willow_pink")
"""Google processors QMU knows offline (device spec and median calibration; `qmu_core.hardware.processors`)."""

Processor = Literal["rainbow", "weber", "willow_pink"]


class QsimSampler(Section):
    """Noiseless shots from qsim's state-vector simulator (seeded, every core)."""

    kind: Literal["qsim"] = Field("qsim", description="Sampler kind (picks this variant).")


class QsimNoisySampler(Section):
    """qsim with a simple noise model: trajectories, one per shot."""

    kind: Literal["qsim_noisy"] = Field("qsim_noisy", description="Sampler kind (picks this variant).")
    depolarizing: float = Field(
        0.001, strict=True, ge=0, lt=1, description="Depolarizing probability after every gate, on its qubits."
    )
    amplitude_damping: float = Field(
        0.0005, strict=True, ge=0, lt=1, description="Amplitude-damping rate gamma per qubit and moment."
    )
    readout_error: float = Field(0.01, strict=True, ge=0, lt=1, description="Bit-flip probability before read-out.")


class GoogleVirtualSampler(Section):
    """A processor's noiseless virtual engine: device-validated circuits, qsim underneath."""

    kind: Literal["google_virtual"] = Field("google_virtual", description="Sampler kind (picks this variant).")
    processor: Processor = Field("willow_pink", description="The processor whose device the circuits compile for.")


class GoogleNoisyQVMSampler(Section):
    """cirq-google's noisy quantum virtual machine: the processor's median-calibration noise, qsim trajectories."""

    kind: Literal["google_noisy_qvm"] = Field("google_noisy_qvm", description="Sampler kind (picks this variant).")
    processor: Processor = Field("willow_pink", description="The processor whose device and noise are used.")


class GoogleEngineSampler(Section):
    """The real Google Quantum Engine. The project id comes from the environment only
    (`GOOGLE_CLOUD_PROJECT`, or the Prefect Secret block `qmu-google-cloud-project`)."""

    kind: Literal["google_engine"] = Field("google_engine", description="Sampler kind (picks this variant).")
    processor_id: str = Field("willow_pink", min_length=1, description="Engine processor id (as the Engine lists it).")
    run_name: str = Field(
        "", description="Automation run holding the device configuration; empty (with `device_config_name`): default."
    )
    device_config_name: str = Field(
        "", description="Device configuration of that run (qubits, gates); empty: the processor's default."
    )

    @model_validator(mode="after")
    def _run_and_config_together(self) -> GoogleEngineSampler:
        if bool(self.run_name) != bool(self.device_config_name):
            raise ValueError(
                "hardware.sampler: the Engine takes `run_name` and `device_config_name` together; set both "
                f"(got run_name={self.run_name!r}, device_config_name={self.device_config_name!r}) or neither."
            )
        return self


class EmulatorSampler(Section):
    """Exact noisy output distributions (batched density matrices), then the requested shots.

    Agrees in distribution with the noisy QVM and is orders of magnitude faster: the default for
    noisy studies. `noise` picks whose noise model: a processor's median calibration, the
    `qsim_noisy` rates below, or none."""

    kind: Literal["emulator"] = Field("emulator", description="Sampler kind (picks this variant).")
    noise: Literal["processor", "qsim_noisy", "none"] = Field(
        "processor", description="`processor`: the calibration noise of `processor`; `qsim_noisy`: the rates below."
    )
    processor: Processor = Field(
        "willow_pink", description="`noise=processor`: the processor whose device and noise are emulated."
    )
    depolarizing: float = Field(0.001, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as in `qsim_noisy`.")
    amplitude_damping: float = Field(0.0005, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as there.")
    readout_error: float = Field(0.01, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as in `qsim_noisy`.")


SamplerConfig = Annotated[
    QsimSampler
    | QsimNoisySampler
    | GoogleVirtualSampler
    | GoogleNoisyQVMSampler
    | GoogleEngineSampler
    | EmulatorSampler,
    Field(discriminator="kind"),
]
"""Which `cirq.Sampler` measures the circuits: one of the kinds above, chosen by `kind`."""

SAMPLER_CLASSES: dict[str, type[Section]] = {
    "qsim": QsimSampler,
    "qsim_noisy": QsimNoisySampler,
    "google_virtual": GoogleVirtualSampler,
    "google_noisy_qvm": GoogleNoisyQVMSampler,
    "google_engine": GoogleEngineSampler,
    "emulator": EmulatorSampler,
}
SAMPLER_KINDS = tuple(SAMPLER_CLASSES)


def _any_of(schema: dict[str, Any]) -> None:
    """Render the sampler union as `anyOf` (Prefect's form picks a variant from it), the presets'
    kind first: both UIs show the first variant selected and, as its `kind` has a default there,
    send ``{"kind": ...}`` for it untouched (which the preset merge leaves as the preset's)."""
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")
    schema.pop("discriminator", None)
    from qmu_core.presets import PRESETS, preset

    kinds = {preset(name).hardware.sampler.kind for name in PRESETS}
    first = SAMPLER_CLASSES[kinds.pop() if len(kinds) == 1 else "emulator"].__name__
    # The refs are still pydantic's internal ones here (".../qmu_core__config__EmulatorSampler-Input__1").
    schema["anyOf"].sort(key=lambda variant: first not in re.split(r"[/_-]+", str(variant.get("$ref", ""))))


class HardwareConfig(Section):
    """Re-evaluation of trained models through a `cirq.Sampler` with finite shots (`qmu hardware`)."""

    sampler: SamplerConfig = Field(
        EmulatorSampler(),
        description=(
            "What measures the circuits (`kind`): `qsim`, `qsim_noisy`, `google_virtual`, `google_noisy_qvm`, "
            "`google_engine` (the real device) or `emulator` (exact noisy distributions, the default)."
        ),
        json_schema_extra=_any_of,
    )
    repetitions: int = Field(1000, strict=True, ge=1, le=1_000_000, description="Shots per record and model.")
    records_per_group: int = Field(
        50,
        strict=True,
        ge=1,
        le=100_000,
        description=(
            "Records measured per group (role x forget/retained; target members, non-members, test), drawn at "
            "random with `run.seed`; fewer if a group is smaller."
        ),
    )
    shots: tuple[StrictInt, ...] = Field(
        (10, 100, 1000, 10000),
        min_length=1,
        description="Shot-count study (`qmu shots`): repetitions to compare, beside the exact (infinite-shot) outputs.",
    )
    measure_references: bool = Field(
        True,
        strict=True,
        description=(
            "Measure the attacker's reference models on the same sampler and shots, so attacks compare like with "
            "like (LiRA's reference distributions then include the device's noise); false: simulated references."
        ),
    )
    cpu_threads: int = Field(0, strict=True, ge=0, le=256, description="Simulator threads; 0: every core.")
    timeout_s: float = Field(
        60.0,
        strict=True,
        ge=1,
        le=86_400,
        description=(
            "Seconds one call to the real Quantum Engine (`google_engine`) may take before the run fails with "
            "the endpoint and the likely cause (no network, no credentials); raise it for a long device queue."
        ),
    )

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [v for v in value if v < 1 or v > 1_000_000]
        if bad or len(set(value)) != len(value):
            raise ValueError(
                f"hardware.shots={list(value)}: list distinct repetitions from 1 to 1,000,000, e.g. [10, 100, 1000]."
            )
        return tuple(sorted(value))


PresetName = Literal["tiny", "default", "paper", "paper_hqnn", "paper_angle"]
"""The named presets of `qmu_core.presets` (checked there)."""


class QMUConfig(Section):
    """Everything one run depends on. It is also the flow's only parameter."""

    preset: PresetName | None = Field(
        None,
        description=(
            "Start from this named preset (tiny: a smoke test in about a minute; default: the HQNN that "
            "memorizes 150 digits; paper, paper_hqnn, paper_angle: the paper's models on 1,000 MNIST records). "
            "Every field given beside it overrides the preset's value; empty: the built-in defaults."
        ),
    )
    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    attack: AttackConfig = AttackConfig()
    unlearn: UnlearnConfig = UnlearnConfig()
    hardware: HardwareConfig = HardwareConfig()

    @model_validator(mode="before")
    @classmethod
    def _start_from_preset(cls, data: Any) -> Any:
        """``{"preset": name, ...}``: the preset's values with the given ones merged over them,
        so a deployment or a config file names its preset instead of repeating it."""
        if isinstance(data, dict) and isinstance(data.get("preset"), str):
            from qmu_core.overrides import deep_merge
            from qmu_core.presets import PRESETS

            if data["preset"] in PRESETS:  # an unknown name fails on the field, with the choices
                return deep_merge(PRESETS[data["preset"]](), data)
        return data


def check_artifact_root(root: Path | str) -> Path | str:
    """Check that `root` is, or can be created as, a directory this process can write; or, for a
    URL root (``scheme://...``), that fsspec knows the protocol, its package is installed and a
    probe file can be written and deleted there.

    The CLI calls it before a run starts, so a bad `run.artifact_root` fails before any work.

    Returns:
        `root` as a `Path`, or the URL (a string) for a URL root.

    Raises:
        ConfigError: If `root` is an existing file, lies below a file, or is not writable; for
            a URL, if its protocol is unknown, its fsspec backend is not installed, or the probe fails.
    """
    from qmu_core import storage

    if storage.is_url(root):
        return _check_url_root(str(storage.normalize(root)))
    root = Path(root)
    fix = (
        "Set `run.artifact_root` to a directory you can write (it is created if missing), "
        "e.g. `--set run.artifact_root=/tmp/qmu`."
    )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run.artifact_root={str(root)!r} is an existing file, not a directory. {fix}")
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(
            f"run.artifact_root={str(root)!r} cannot be created: {str(probe)!r} is a file, not a directory. {fix}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "it" if probe == root else f"its nearest existing parent {str(probe)!r}"
        raise ConfigError(
            f"run.artifact_root={str(root)!r} is not writable: {where} denies write access to this user. "
            f"{fix} Or fix the permissions."
        )
    return root


def _check_url_root(url: str) -> str:
    """`check_artifact_root` for a URL root: known protocol, backend installed, a probe file written and deleted."""
    import uuid

    import fsspec  # type: ignore[import-untyped]
    from fsspec.registry import known_implementations  # type: ignore[import-untyped]

    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ConfigError(
            f"run.artifact_root={url!r}: fsspec knows no protocol {protocol!r}. Use a local directory or a URL "
            f"of a protocol it knows, e.g. s3://, gs://, az:// or file:// ({len(known_implementations)} are known)."
        ) from None
    except ImportError as exc:
        err = known_implementations.get(protocol, {}).get("err") or str(exc)
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
            protocol
        )
        hint = f"`pip install {package}`" if package else "install the package fsspec names"
        raise ConfigError(
            f"run.artifact_root={url!r} needs the fsspec backend for {protocol!r}, which is not installed "
            f"({err}). {hint} in this environment and on every worker machine."
        ) from None
    rel = f".qmu-probe-{uuid.uuid4().hex[:12]}"
    try:
        fs, base = fsspec.core.url_to_fs(url)
        target = f"{str(base).rstrip('/')}/{rel}"
        fs.makedirs(str(base), exist_ok=True)
        fs.pipe_file(target, b"qmu write probe\n")
        fs.rm_file(target)
    except Exception as exc:  # noqa: BLE001 - any backend error (permissions, credentials, network): not usable
        raise ConfigError(
            f"run.artifact_root={url!r} is not writable: writing and deleting the probe file {url}/{rel} failed "
            f"({type(exc).__name__}: {exc}). Check the URL, that the location exists, and the backend's "
            "credentials (e.g. AWS_PROFILE / AWS_ACCESS_KEY_ID for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://)."
        ) from None
    return url


def derive_seed(root: int, *labels: str | int) -> int:
    """Stable 31-bit child seed for one model or stage, independent of call order."""
    text = "/".join([str(root), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
