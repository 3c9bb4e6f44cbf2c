"""The `unlearn` section and the catalogue of unlearning methods (`METHODS`).

A method's stage is keyed by the `unlearn` fields its entry `reads` (`UnlearnConfig.for_stage`),
so tuning one method never re-runs another; tests/qmu_core/config/test_catalogues.py checks that
each method reads no other field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SerializationInfo, SerializerFunctionWrapHandler, field_validator, model_serializer

from qmu_core import plugins
from qmu_core.config.catalogue import Catalogue, Variant
from qmu_core.config.form import Section, unsaid

__all__ = ["METHODS", "METHOD_PLUGINS", "RELEARN", "UNLEARN_METHODS", "MethodName", "UnlearnConfig"]

_GUARDED = frozenset({"guard_drop", "guard_records", "step_scales"})
_LEGACY = {"finetune_optimizer": "train"}
"""Fields added later, at the value that reproduces what QMU did before they existed. A stage that
does not read one gets this value (`UnlearnConfig.for_stage`), and the dump leaves it out there, so
its key is the one it had before; a stage that reads one is keyed by it unless it is this value."""
"""Every method runs under the retained-accuracy guard and the step-size rule (`qmu_core.unlearning.guard`)."""

_ITERATIVE = _GUARDED | {"objective", "learning_rate", "batch_size", "max_epochs", "stop_forget_acc"}

METHODS = Catalogue(
    "unlearning method",
    {
        "ga": Variant(
            "gradient ascent",
            label="GA",
            reads=_ITERATIVE,
            hint="A saturated model has near-zero loss gradients under unlearn.objective=ascent: use complement, "
            "or raise unlearn.learning_rate or unlearn.max_epochs.",
            implementation="qmu_core.unlearning.ga:GradientAscent",
        ),
        "ssd": Variant(
            "selective synaptic dampening",
            label="SSD",
            reads=_GUARDED | {"batch_size", "stop_forget_acc", "ssd_alpha", "ssd_lambda", "ssd_importance"},
            hint="SSD dampens once: lower unlearn.ssd_alpha (more parameters dampened) or unlearn.ssd_lambda "
            "(stronger).",
            implementation="qmu_core.unlearning.ssd:SelectiveSynapticDampening",
        ),
        "rga": Variant(
            "relative gradient ascent",
            label="RGA",
            reads=_ITERATIVE | {"rga_retain_weight", "rga_learning_rate"},
            hint="Raise unlearn.learning_rate or unlearn.max_epochs, or lower unlearn.rga_retain_weight.",
            implementation="qmu_core.unlearning.rga:RelativeGradientAscent",
        ),
        "salun": Variant(
            "SalUn (saliency-masked random labels)",
            label="SalUn",
            # `objective` is not read (SalUn's objective is its random labels); it stays in the
            # key so that existing salun artifacts keep their keys.
            reads=_ITERATIVE | {"salun_sparsity", "salun_learning_rate"},
            hint="Raise unlearn.learning_rate, unlearn.max_epochs or unlearn.salun_sparsity.",
            implementation="qmu_core.unlearning.salun:SalUn",
        ),
        "finetune": Variant(
            "fine-tuning on the retained set",
            label="fine-tune",
            reads=_GUARDED | {"stop_forget_acc", "finetune_epochs", "finetune_learning_rate", "finetune_optimizer"},
            hint="Fine-tuning on the retained set forgets only slowly: raise unlearn.finetune_epochs.",
            implementation="qmu_core.unlearning.finetune:FineTune",
        ),
    },
)
"""Unlearning methods (`qmu_core.unlearning`), in report order. An entry's `reads` are the
`unlearn` fields its stage reads (the method and its stopping target); its implementation is a
`qmu_core.unlearning.base.Method`. The retrain oracle and the no-op baseline (the model before
unlearning) are always part of the comparison."""

RELEARN = Variant(
    "relearn time",
    reads=frozenset({"batch_size", "relearn_max_steps"}),
    implementation="qmu_core.unlearning.relearn:relearn_steps",
)
"""The relearn stage, keyed like a method by the `unlearn` fields it reads."""

UNLEARN_METHODS = METHODS.names

_RESERVED = frozenset({"relearn", "retrain", "oracle", "before", "target"})
"""Names the comparison and the stage keys use for other things: never a plug-in method's."""

METHOD_PLUGINS: tuple[str, ...] = tuple(
    n for n in plugins.installed(plugins.UNLEARNING) if n not in METHODS and n not in _RESERVED
)
"""The installed unlearning plug-ins' registered names (entry point group ``qmu.unlearning``; read from
metadata when this module is imported, importing no plug-in). Any other value of ``unlearn.methods``
fails validation before anything is imported."""

if TYPE_CHECKING:
    MethodName = str
else:
    MethodName = Literal[UNLEARN_METHODS + METHOD_PLUGINS]


class UnlearnConfig(Section):
    """The unlearning methods compared against the retrain oracle, and their hyperparameters.

    Stopping rule, fixed before any method runs: the iterative methods (GA, RGA, SalUn) stop
    after the first pass that reaches the request's target, or after `max_epochs` passes. For a
    class, the target is forget-set training accuracy at or below `stop_forget_acc`; for a list
    of sample_ids, a forget-set mean loss -log p(y|x) at or above the model's own mean loss on
    held-out records. SSD is one dampening step, fine-tune a fixed number of epochs; all report
    whether they reached the target.
    """

    methods: tuple[MethodName, ...] = Field(
        UNLEARN_METHODS,
        min_length=1,
        description=(
            "Methods to run, each from the trained model: "
            + "; ".join(f"`{name}` {METHODS.title(name)}" for name in METHODS.names)
            + "; any other choice is an installed unlearning plug-in (entry point `qmu.unlearning`), keyed by "
            "every field of this section. The retrain oracle and the no-op baseline always run (docs/methods.md)."
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
            "Sample requests stop once the forget set's mean loss rises to the model's mean loss on held-out "
            "records instead."
        ),
    )
    guard_drop: float = Field(
        0.05,
        strict=True,
        ge=0,
        le=1,
        description=(
            "Retained-accuracy guard: a method may lower the accuracy on the guard slice (`guard_records`) by at "
            "most this; a pass that goes further is undone and the method stops."
        ),
    )
    guard_records: int = Field(
        200,
        strict=True,
        ge=0,
        le=10000,
        description="Size of the guard slice: held-out records of the retained classes (never trained on, never "
        "the test set, read by no method), drawn once per seed; all of them if fewer. 0: no guard.",
    )
    step_scales: tuple[float, ...] = Field(
        (1.0, 0.5, 0.25, 0.125),
        min_length=1,
        max_length=8,
        description=(
            "Step-size rule: each method runs at its step size (SGD learning rate; SSD: 1/ssd_alpha) times each "
            "factor, largest first, from the same model and seed; the first that reaches the forget target with "
            "the guard holding is kept, else the one that got furthest within the guard."
        ),
    )

    @field_validator("step_scales")
    @classmethod
    def _scales_decrease(cls, scales: tuple[float, ...]) -> tuple[float, ...]:
        if any(not (0 < f <= 1) for f in scales) or any(b >= a for a, b in zip(scales, scales[1:], strict=False)):
            raise ValueError(
                f"unlearn.step_scales={list(scales)} must be factors in (0, 1], largest first, each smaller than "
                "the one before, for example [1, 0.5, 0.25, 0.125]."
            )
        return scales

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
            "the default model."
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
    finetune_optimizer: Literal["sgd", "train"] = Field(
        "sgd",
        description=(
            "Fine-tune: `sgd`, SGD with the train section's momentum, steps in proportion to the gradient; `train`, "
            "the train section's optimizer. A fresh Adam at a trained model moves every weight by about the step "
            "size on the sign of gradients that are float rounding, so its result depends on the CPU "
            "(docs/methods.md#reproducibility)."
        ),
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
        """This section with only the fields stage `name` reads (a method, or ``relearn``).

        Those are its `METHODS` entry's `reads` (`RELEARN`'s), the rest at their defaults. Stages are keyed
        by this, so tuning SSD never re-runs GA, and adding a method or a repeat reuses every finished one.
        An unlearning plug-in may read any field: it gets (and is keyed by) all of them.

        Raises:
            KeyError: If `name` is neither a method, an installed plug-in nor ``relearn``.
        """
        if name in METHOD_PLUGINS:
            return self.model_copy(update={"methods": (name,)})
        keep = RELEARN.reads if name == "relearn" else METHODS[name].reads
        unread = {k: v for k, v in _LEGACY.items() if k not in keep}
        return UnlearnConfig(methods=(name,) if name in METHODS else UNLEARN_METHODS).model_copy(
            update=unread | {k: getattr(self, k) for k in keep}
        )

    @model_serializer(mode="wrap")
    def _legacy_values_unsaid(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """Leave out fields at their `_LEGACY` value: the stages that do not read them keep their keys."""
        return unsaid(handler(self), info, [k for k, v in _LEGACY.items() if getattr(self, k) == v])
