"""Typed provenance: what each stage records about its output (the ``qmu.extra`` metadata).

Every artifact's Parquet metadata carries its stage, key, version and inputs (`Provenance`)
plus a small *facts* record whose type depends on the stage (`FACTS`). Code reads facts through
`qmu_core.artifacts.read_facts(ref, SplitFacts)`, never as nested dicts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FACTS", "AttackFacts", "Facts", "ModelFacts", "Provenance", "SplitFacts"]


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
    forget_class: int = Field(description="The forget class label.")

    def describe(self) -> str:
        return (
            f"{self.source}: {self.counts}; forget set = {self.forget_in_train} target_train records "
            f"of class {self.forget_class}"
        )


class ModelFacts(Facts):
    """Facts of a `model` artifact: a trained model, or an unlearned one."""

    which: str = Field(description="Model name: target, oracle, shadow-<i> or unlearned-<method>.")
    n_train: int | None = Field(None, description="Training records (trained models).")
    history: list[dict[str, float]] = Field(default_factory=list, description="One record per epoch / pass.")
    passes: int | None = Field(None, description="Unlearning passes made (unlearned models).")
    reached_stop: bool | None = Field(None, description="Whether unlearning reached its stop rule.")


class AttackFacts(Facts):
    """Facts of the `attack_model` stage."""

    shadow_train_acc: float = Field(description="Accuracy of the attack on its own shadow training rows.")
    n_rows: int = Field(0, description="Shadow rows the attack was fitted on.")
    classifier: str = Field("", description="The attack classifier.")

    def describe(self) -> str:
        return (
            f"attack ({self.classifier}) fitted on {self.n_rows} shadow records; train acc {self.shadow_train_acc:.3f}"
        )


FACTS: dict[str, type[Facts] | None] = {
    "splits": SplitFacts,
    "feature_map": None,
    "model": ModelFacts,
    "outputs": None,
    "attack_model": AttackFacts,
    "mia_scores": None,
    "metrics": None,
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
