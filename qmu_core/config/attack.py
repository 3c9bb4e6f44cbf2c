"""The `attack` section and the catalogue of membership attacks (`ATTACKS`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from qmu_core import plugins
from qmu_core.config.catalogue import Catalogue, Variant
from qmu_core.config.form import Section, unsaid

__all__ = ["ATTACKS", "ATTACK_NAMES", "ATTACK_PLUGINS", "AttackConfig", "AttackName", "AttackPlugin", "plugin_choice"]

ATTACKS = Catalogue(
    "membership attack",
    {
        "gap": Variant("gap (member = correct)", implementation="qmu_core.attacks.gap:GapAttack"),
        "paper": Variant(
            "paper (MLP)",
            reads=frozenset({"protocol", "reference", "classifier", "max_iter", "threshold"}),
            implementation="qmu_core.attacks.paper:PaperAttack",
        ),
        "loss": Variant("loss threshold", implementation="qmu_core.attacks.loss:LossAttack"),
        "lira_offline": Variant(
            "LiRA offline",
            reads=frozenset({"lira_fixed_variance"}),
            implementation="qmu_core.attacks.lira:LiraOffline",
        ),
        "lira_online": Variant(
            "LiRA online",
            reads=frozenset({"lira_fixed_variance"}),
            implementation="qmu_core.attacks.lira:LiraOnline",
        ),
        "rmia": Variant(
            "RMIA", reads=frozenset({"rmia_gamma", "rmia_offline_a"}), implementation="qmu_core.attacks.rmia:Rmia"
        ),
    },
)
"""Every membership attack QMU runs (`qmu_core.attacks`), in report order. An entry's `reads`
are the `attack` fields its construction and fit read besides `threat_model`, which selects what
every attack observes; its implementation is an `Attack` built by ``from_config``."""

ATTACK_NAMES = ATTACKS.names

ATTACK_PLUGINS: tuple[str, ...] = tuple(n for n in plugins.installed(plugins.ATTACKS) if n not in ATTACKS)
"""The installed attack plug-ins' registered names (entry point group ``qmu.attacks``; read from metadata
when this module is imported, importing no plug-in); a built-in attack's name is never a plug-in's."""


def _none_installed(name: str) -> str:
    raise ValueError(
        f"attack.plugins names {name!r}, but no attack plug-in is installed (entry point group "
        f"{plugins.ATTACKS}). Install the package that registers it, or leave attack.plugins empty. "
        "No module path is ever imported: a plug-in is found only by its registered name."
    )


def plugin_choice(names: tuple[str, ...]) -> Any:
    """The type of one ``attack.plugins`` entry: one of `names`; with none, a type that refuses every value.

    Its schema is an enum also for one name (pydantic writes a one-name Literal as ``const``): the form's choices.
    """
    inner: Any = Literal[names] if names else Annotated[str, AfterValidator(_none_installed)]
    return Annotated[inner, WithJsonSchema({"type": "string", "enum": list(names)})]


if TYPE_CHECKING:
    AttackName = str
    AttackPlugin = str
else:
    AttackName = Literal[ATTACK_NAMES + ATTACK_PLUGINS]
    AttackPlugin = plugin_choice(ATTACK_PLUGINS)


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
    headline: AttackName = Field(
        "lira_online",
        description=(
            "The attack behind the top-level `mia_*` numbers of the summary and the plot "
            "(an attack plug-in only if `plugins` lists it)."
        ),
    )
    plugins: tuple[AttackPlugin, ...] = Field(
        (),
        description=(
            "Installed attack plug-ins (entry point `qmu.attacks`) to fit and score beside the built-in attacks, "
            "by registered name; the choices list what is installed."
        ),
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
    ulira_models: int = Field(
        8,
        strict=True,
        ge=0,
        le=64,
        description=(
            "U-LiRA (Hayes et al. 2025): the first this many reference models are also put through every "
            "unlearning method with their own deletion request (and, for a class request, retrained without "
            "it), so each forget record gets an 'unlearned' and a 'retrained' Gaussian; the report gives each "
            "model's AUC against a retrained control (0.5: indistinguishable from retraining). 0 turns it off; "
            "needs attack.reference=population; capped at attack.n_shadow."
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

    @model_validator(mode="after")
    def _headline_runs(self) -> AttackConfig:
        if self.headline not in ATTACK_NAMES and self.headline not in self.plugins:
            raise ValueError(
                f"attack.headline={self.headline!r} is an attack plug-in that attack.plugins does not list, so it "
                f"would not run. Add {self.headline!r} to attack.plugins, or pick a built-in headline."
            )
        if len(set(self.plugins)) != len(self.plugins):
            raise ValueError(f"attack.plugins={list(self.plugins)} lists a plug-in twice; list each once.")
        return self

    @model_serializer(mode="wrap")
    def _no_plugins_unsaid(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """Leave ``plugins`` out while it is empty: the audits of built-in attacks keep their keys."""
        return unsaid(handler(self), info, [] if self.plugins else ["plugins"])
