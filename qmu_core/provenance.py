"""Typed provenance: what each stage records about its output (the ``qmu.extra`` metadata).

Every artifact's Parquet metadata carries its stage, key, version and inputs (`Provenance`)
plus a small *facts* record whose type depends on the stage (`FACTS`). Code reads facts through
`qmu_core.artifacts.read_facts(ref, SplitFacts)`, never as nested dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FACTS", "AuditFacts", "Facts", "ModelFacts", "Provenance", "RelearnFacts", "SplitFacts", "ULiraFacts"]


class Facts(BaseModel):
    """Base of every stage's facts: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def describe(self) -> str:
        """One log line."""
        return ", ".join(f"{k}={v}" for k, v in self.model_dump().items() if not isinstance(v, list | dict))


class SplitFacts(Facts):
    """Facts of the `splits` stage (and its `feature_map` companion)."""

    source: str = Field(description="Where the images came from.")
    image_side: int = Field(description="Image height (= width) in pixels.")
    counts: dict[str, int] = Field(description="Records per role.")
    forget_in_train: int = Field(description="Target training records of the forget class (the forget set).")
    forget_class: int = Field(description="The forget class label (class requests).")
    request: str = Field("class", description="The deletion request: class or samples.")
    forget_ids_sha256: str | None = Field(
        None, description="SHA-256 of the deleted sample_ids, sorted and comma-joined."
    )
    label_names: dict[str, str] | None = Field(
        None, description="A file's own class names by the label number QMU gave them (text labels only)."
    )

    def describe(self) -> str:
        """One log line: the source, the counts and the forget set."""
        what = f"of class {self.forget_class}" if self.request == "class" else "requested by sample_id"
        return f"{self.source}: {self.counts}; forget set = {self.forget_in_train} target_train records {what}"


class ModelFacts(Facts):
    """Facts of a `model` artifact: a trained model, or an unlearned one."""

    which: str = Field(description="Model name: target, oracle, shadow-<i> or unlearned-<method>.")
    n_train: int | None = Field(None, description="Training records (trained models).")
    history: list[dict[str, float]] = Field(default_factory=list, description="One record per epoch / pass.")
    passes: int | None = Field(None, description="Unlearning passes made (unlearned models).")
    reached_stop: bool | None = Field(None, description="Whether unlearning reached its stop rule.")
    method: str | None = Field(None, description="Unlearning method (unlearned models).")
    stop_acc: float | None = Field(None, description="The forget-set accuracy the stopping rule aimed at.")
    stop_loss: float | None = Field(None, description="Sample requests: the forget-set loss the rule aimed at.")
    stop_target: str = Field("", description="The stopping target in words.")
    note: str = Field("", description="What the method did, in words (e.g. parameters dampened).")
    step_scale: float | None = Field(None, description="Unlearned models: the step-size factor the rule kept.")
    steps_tried: list[dict[str, float]] = Field(
        default_factory=list,
        description="Unlearned models: every factor tried, whether it reached the target and the guard.",
    )
    guard_acc: float | None = Field(None, description="Unlearned models: accuracy on the guard slice after unlearning.")
    guard_floor: float | None = Field(None, description="Unlearned models: the guard's floor on that slice.")
    guard_stopped: bool | None = Field(
        None, description="Unlearned models: the guard undid the kept run's last change."
    )
    wall_s: float | None = Field(None, description="Seconds spent training or unlearning (model load excluded).")
    circuit_evals: int | None = Field(
        None, description="Circuit simulations of one record spent (an adjoint gradient counts two)."
    )


class RelearnFacts(Facts):
    """Facts of a `relearn` artifact: how fast a model regains the original forget accuracy."""

    which: str = Field(description="The model fine-tuned on the forget set.")
    target_acc: float = Field(description="The forget-set accuracy of the model before unlearning.")
    steps: int | None = Field(description="Fine-tuning steps until it was regained; None: not within max_steps.")
    max_steps: int = Field(description="Where counting stopped.")


class AuditFacts(Facts):
    """Facts of the `mia_scores` stage: how the attacks were set up and what they decided."""

    threat_model: str = Field(description="What the attacker observes: probs, expectations or labels.")
    reference: str = Field(description="Reference models: disjoint (pool halves) or population (candidate halves).")
    n_reference: int = Field(description="Reference models the attacks were fitted on.")
    protocol: str = Field(description="How the `paper` attack's MLP was trained: shadow or paper.")
    thresholds: dict[str, float] = Field(description="Per attack: the 'member' threshold fixed on reference data.")
    not_applicable: dict[str, str] = Field(description="Attacks that did not run, and why.")
    paper_train_acc: float | None = Field(None, description="Accuracy of the `paper` MLP on its own training rows.")

    def describe(self) -> str:
        """One log line: the reference models, the threat model, the attacks run and those skipped."""
        ran = ", ".join(f"{k} (threshold {v:.3g})" for k, v in self.thresholds.items())
        skipped = "; ".join(f"{k}: {v}" for k, v in self.not_applicable.items())
        return f"{self.n_reference} {self.reference} reference models, threat model {self.threat_model}: {ran}" + (
            f"; not applicable: {skipped}" if skipped else ""
        )


class ULiraFacts(Facts):
    """Facts of the `ulira` stage (`qmu_core.attacks.ulira`): each audited model's U-LiRA AUC."""

    n_records: int = Field(description="Forget-set records scored.")
    n_reference: int = Field(description="Reference models behind the Gaussians (each side).")
    retrained_side: str = Field(description="Where the retrained side's observations come from.")
    unlearned_per_record: float = Field(description="Mean unlearned observations per record.")
    auc: dict[str, list[float]] = Field(description="Per audited phase: [AUC, CI low, CI high] against the null.")
    null_spread: dict[str, float] = Field(
        default_factory=dict, description="Per fit (method, or none): SD of the null models' own AUCs."
    )

    def describe(self) -> str:
        """One log line: the reference models and each phase's AUC."""
        aucs = ", ".join(f"{p} {v[0]:.3f}" for p, v in self.auc.items())
        return (
            f"U-LiRA on {self.n_records} forget records, {self.n_reference} reference models "
            f"(~{self.unlearned_per_record:.1f} unlearned per record; retrained: {self.retrained_side}): {aucs}"
        )


FACTS: dict[str, type[Facts] | None] = {
    "splits": SplitFacts,
    "feature_map": None,
    "model": ModelFacts,
    "outputs": None,
    "membership": None,
    "mia_scores": AuditFacts,
    "hw_scores": AuditFacts,
    "metrics": None,
    "relearn": RelearnFacts,
    "comparison": None,
    "ulira": ULiraFacts,
}
"""The facts type of each stage (None: the stage records no facts)."""


class Provenance(BaseModel):
    """What an artifact's metadata says about it."""

    model_config = ConfigDict(frozen=True)

    stage: str
    key: str
    stage_version: int
    inputs: dict[str, Any]
    facts: dict[str, Any]
    created_at: str | None = None
    core_version: str | None = None
    warnings: list[str] = []
