"""The membership audit: fit every attack once on the reference models, score every model.

`audit` is what the ``mia_scores`` stage does. It builds the attacker's `Reference` from the
reference models' outputs and the membership matrix, fits each attack of `ATTACKS` (and each
attack plug-in ``attack.plugins`` lists, `qmu_core.attacks.plugin`) that applies under the
configured threat model and reference kind, and scores every audited model
(``before``, every ``after_*``, ``oracle``, or any model given to ``qmu audit``) with the same
frozen attacks. Its table has one row per (phase, attack, audited record): the target's members
(``target_train``) and non-members (``target_holdout``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from qmu_core.artifacts import Output
from qmu_core.attacks.base import AUDITED_ROLES, Attack, Observations, Reference
from qmu_core.attacks.paper import PaperAttack
from qmu_core.config import ATTACKS, AttackConfig
from qmu_core.errors import ArtifactError
from qmu_core.membership import true_members
from qmu_core.provenance import AuditFacts

__all__ = ["SHOT_AWARE", "audit", "build", "shot_aware_audit"]

SHOT_AWARE = ("lira_offline", "lira_online")
"""The attacks `shot_aware_audit` fits (LiRA's per-record Gaussians are what shot noise widens)."""


def build(name: str, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Attack:
    """The unfitted attack `name` (its `ATTACKS` entry's implementation) with its settings from `config`.

    A name ``attack.plugins`` lists is an installed attack plug-in's (`qmu_core.attacks.plugin`).

    Raises:
        ConfigError: If `ATTACKS` has no attack `name` and ``config.plugins`` does not list it.
    """
    if name not in ATTACKS and name in config.plugins:
        from qmu_core.attacks.plugin import plugin_attack

        return plugin_attack(name, config, splits, seed=seed)
    attack: type[Attack] = ATTACKS.entry(name).load()
    return attack.from_config(config, splits, seed=seed)


def _in_split_order(outputs: pd.DataFrame, ids: np.ndarray, what: str) -> pd.DataFrame:
    if not np.array_equal(outputs["sample_id"].to_numpy(), ids):
        raise ArtifactError(
            f"The outputs of {what} do not cover the split's records in its order; they were computed on "
            "another split. Recompute them (`PREFECT_TASKS_REFRESH_CACHE=true`)."
        )
    return outputs


def reference_set(
    splits: pd.DataFrame,
    membership: pd.DataFrame,
    reference_outputs: Sequence[pd.DataFrame],
    config: AttackConfig,
    classes: Sequence[int],
) -> Reference:
    """The attacker's `Reference`: every reference model's observations and the membership matrix."""
    ids = splits["sample_id"].to_numpy()
    names = [str(out["model_id"].iloc[0]) for out in reference_outputs]
    wide = membership.pivot(index="model_id", columns="sample_id", values="is_member")
    missing = [n for n in names if n not in wide.index]
    if missing:
        raise ArtifactError(f"The membership matrix has no rows for reference models {missing}.")
    matrix = wide.loc[names, ids].to_numpy().astype(bool)
    models = tuple(
        Observations.from_outputs(_in_split_order(out, ids, name), classes, config.threat_model)
        for out, name in zip(reference_outputs, names, strict=True)
    )
    return Reference(models, matrix, (splits["role"] == "shadow_pool").to_numpy())


def audit(
    splits: pd.DataFrame,
    membership: pd.DataFrame,
    reference_outputs: Sequence[pd.DataFrame],
    audited: Mapping[str, pd.DataFrame],
    config: AttackConfig,
    classes: Sequence[int],
    *,
    seed: int,
) -> Output:
    """Fit every applicable attack once and score every audited model (module doc).

    Args:
        splits: The split table (record order and roles).
        membership: The reference models' membership matrix (long form).
        reference_outputs: Each reference model's `outputs` table.
        audited: ``{phase: outputs}`` of the models to audit; the `paper` protocol fits on
            ``audited["before"]`` (the target).
        config: The attack section.
        classes: The model's class labels, in output order.
        seed: Root seed.

    Returns:
        The per-record scores (``phase``, ``model_id``, ``sample_id``, ``role``, ``is_forget``,
        ``attack``, ``score``, ``is_member``) and `AuditFacts` (thresholds, attacks that do not
        apply and why).
    """
    ids = splits["sample_id"].to_numpy()
    reference = reference_set(splits, membership, reference_outputs, config, classes)
    fitted: dict[str, Attack] = {}
    reasons: dict[str, str] = {}
    for name in (*ATTACKS, *config.plugins):
        attack = build(name, config, splits, seed=seed)
        reason = attack.applicable(reference)
        if reason:
            reasons[name] = reason
            continue
        if name == "paper" and config.protocol == "paper":
            if "before" not in audited:
                raise ArtifactError("attack.protocol=paper fits on the target's outputs: audit the `before` model too.")
            target = _in_split_order(audited["before"], ids, "the target")
            own = Reference(
                (Observations.from_outputs(target, classes, config.threat_model),),
                true_members(target)[None, :],
                reference.population,
            )
            fitted[name] = attack.fit(own)
        else:
            fitted[name] = attack.fit(reference)
    parts = _scored(fitted, splits, audited, config, classes)
    facts = _facts(config, reference, fitted, reasons)
    return Output(pd.concat(parts, ignore_index=True), facts)


def _facts(
    config: AttackConfig, reference: Reference, fitted: Mapping[str, Attack], reasons: Mapping[str, str]
) -> AuditFacts:
    """The `AuditFacts` of attacks `fitted` on `reference` (and of those not applicable, with `reasons`)."""
    paper = fitted.get("paper")
    return AuditFacts(
        threat_model=config.threat_model,
        reference=config.reference,
        n_reference=reference.n_models,
        protocol=config.protocol,
        thresholds={name: float(a.threshold) for name, a in fitted.items()},
        not_applicable=dict(reasons),
        paper_train_acc=float(paper.train_acc) if isinstance(paper, PaperAttack) else None,
    )


def _scored(
    fitted: Mapping[str, Attack],
    splits: pd.DataFrame,
    audited: Mapping[str, pd.DataFrame],
    config: AttackConfig,
    classes: Sequence[int],
) -> list[pd.DataFrame]:
    """Every fitted attack's scores of every audited model's members and non-members."""
    ids = splits["sample_id"].to_numpy()
    keep = splits["role"].isin(AUDITED_ROLES).to_numpy()
    parts = []
    for phase, outputs in audited.items():
        outputs = _in_split_order(outputs, ids, phase)
        obs = Observations.from_outputs(outputs, classes, config.threat_model)
        members = true_members(outputs)[keep]
        for name, attack in fitted.items():
            parts.append(
                pd.DataFrame(
                    {
                        "phase": phase,
                        "model_id": outputs["model_id"].to_numpy()[keep],
                        "sample_id": ids[keep],
                        "role": outputs["role"].to_numpy()[keep],
                        "is_forget": outputs["is_forget"].to_numpy()[keep],
                        "attack": name,
                        "score": np.asarray(attack.score(obs), dtype=np.float64)[keep],
                        "is_member": members,
                    }
                )
            )
    return parts


def shot_aware_audit(
    splits: pd.DataFrame,
    membership: pd.DataFrame,
    exact_references: Sequence[pd.DataFrame],
    measured_references: Sequence[pd.DataFrame],
    audited: Mapping[str, pd.DataFrame],
    config: AttackConfig,
    classes: Sequence[int],
) -> Output:
    """`audit` with shot-aware LiRA (`qmu_core.attacks.lira`, `SHOT_AWARE`) for models measured with finite shots.

    Args:
        splits: The split table.
        membership: The reference models' membership matrix.
        exact_references: Each reference model's outputs at infinite shots under the device's noise.
        measured_references: The same models' outputs measured at the audited models' shot count.
        audited: ``{phase: outputs}`` measured at that shot count.
        config: The attack section (threat model, LiRA's variance).
        classes: The model's class labels, in output order.

    Returns:
        The scores of the LiRA variants that apply, in `audit`'s schema, and their `AuditFacts`.
    """
    exact = reference_set(splits, membership, exact_references, config, classes)
    measured = reference_set(splits, membership, measured_references, config, classes)
    fitted: dict[str, Attack] = {}
    reasons: dict[str, str] = {}
    for name in SHOT_AWARE:
        attack = build(name, config, splits, seed=0)
        reason = attack.applicable(exact)
        if reason:
            reasons[name] = reason
            continue
        fitted[name] = attack.fit_shot_aware(exact, measured)  # type: ignore[attr-defined]
    if not fitted:
        raise ArtifactError(f"No shot-aware attack applies: {reasons}.")
    facts = _facts(config, exact, fitted, reasons)
    return Output(pd.concat(_scored(fitted, splits, audited, config, classes), ignore_index=True), facts)
