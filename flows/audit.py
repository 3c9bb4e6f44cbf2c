"""The audit flow: membership attacks on a run's models (or given model artifacts).

It reuses the cached reference models.

Its parameters are what a user has in hand, typed as plain strings (the Prefect form shows each
with its description and an example): a run's name, its folder, its summary.json, or model paths
as a run's files list shows them. The run's own config makes the reference models, so they are
reused from the cache; ``overrides`` (``section.field=value``, as ``qmu run --set``) changes it.
With every parameter left empty (the UI's Quick run) it audits the latest pipeline run under the
artifact root, or fails at once with one line saying what to type.
"""

from __future__ import annotations

import time
from typing import Annotated

from pydantic import Field

from flows.steps import membership_audit, reference_models, split
from qmu_core import housekeeping, workers
from qmu_core.artifacts import ArtifactRef
from qmu_core.attacks.subjects import DEFAULT_ROOT, Subject, resolve_many, split_sources
from qmu_core.config import AttackConfig, QMUConfig, check_artifact_root
from qmu_core.config.overrides import apply_overrides
from qmu_core.errors import ConfigError, QMUError
from qmu_prefect.flow import qmu_flow
from qmu_prefect.runs import audit_run_name, fail_with, tag_run
from qmu_prefect.ui import show_run, track
from tasks import model_outputs, publish_report

SOURCE_EXAMPLES = [
    "nimble-lemur",
    "data/artifacts/runs/nimble-lemur",
    "data/artifacts/runs/nimble-lemur/summary.json",
    "data/artifacts/model/model-v1-0123456789ab.parquet, data/artifacts/model/model-v1-ba9876543210.parquet",
]
OVERRIDE_EXAMPLES = [["attack.threat_model=labels"], ["attack.n_shadow=16", "run.workers=2"]]
ROOT_EXAMPLES = [DEFAULT_ROOT, "/srv/qmu/artifacts", "s3://bucket/qmu"]


def audit_subject(
    source: str, artifact_root: str, overrides: tuple[str, ...] | list[str], *, attack: AttackConfig | None = None
) -> Subject:
    """What `qmu_audit` audits: the subject `source` names (`resolve_many`).

    Several sources are separated by commas; `overrides` are applied to its config, and its
    artifact root is checked.

    Raises:
        QMUError: If the source names nothing usable or an override is invalid (one message).
    """
    subject = resolve_many(split_sources(source), root=artifact_root or DEFAULT_ROOT, attack=attack)
    try:
        config = apply_overrides(subject.config, list(overrides))
    except ConfigError as exc:  # its wording is the CLI's (--set); here they are the form's `overrides`
        text = str(exc).replace("after --set overrides", "after `overrides`").replace("--set '", "overrides: '")
        raise ConfigError(text) from None
    check_artifact_root(config.run.artifact_root)
    return Subject(config, subject.models, subject.origins, subject.attack_given)


@qmu_flow("qmu-audit", flow_run_name=audit_run_name, rebuild=False, checks_config=False)
def qmu_audit(
    source: Annotated[str, Field(examples=SOURCE_EXAMPLES)] = "",
    overrides: Annotated[tuple[str, ...], Field(examples=OVERRIDE_EXAMPLES)] = (),
    artifact_root: Annotated[str, Field(examples=ROOT_EXAMPLES)] = DEFAULT_ROOT,
) -> str:
    """Membership audit of a run's models (or of given model artifacts) with every attack.

    On the same records and reference models as the run that made them (reused from the
    cache). Returns summary.json's path.

    Args:
        source: What to audit: a run's name (e.g. nimble-lemur: its folder under
            the artifact root's runs folder, or the name in its summary.json), a run folder, its
            summary.json, or model paths as a run's summary.json and Files list show them
            (data/artifacts/model/model-v1-HASH.parquet; several separated by commas, made
            with one reference-model config). Empty: the latest pipeline run under the
            artifact root.
        overrides: Changes to the run's config, one section.field=value each (as `qmu run
            --set`), e.g. attack.threat_model=labels, or attack.n_shadow=16 (then only the
            new reference models train). Empty: the run's own config (for a model path that no
            run lists: the default attack section).
        artifact_root: Where run names are looked up (its runs folder holds one folder per run) and relative
            paths resolved: a path relative to the worker's directory (the repository), or a
            URL. The audit itself writes below the root its models are in.
    """
    try:
        subject = audit_subject(source, artifact_root, overrides)
    except QMUError as exc:  # a name that finds no run, a bad override: the message says what to type
        return fail_with(str(exc))  # type: ignore[return-value]
    tag_run(subject.config)
    print(f"qmu-audit: auditing {', '.join(subject.models)} of {'; '.join(subject.origins)}")
    return _audit(subject.config, subject.models)


def _audit(config: QMUConfig, models: dict[str, ArtifactRef]) -> str:
    """Audit `models` ({phase: model artifact}) with every attack. Returns summary.json's path."""
    started = time.time()
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
        workers.configure(config.run.workers)
        common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}

        # The same split and reference models as the run that made the models (cached).
        base, splits = split(config)
        references = reference_models(config, base)
        track(references["reference_models"].values(), "reference models trained")

        # Every attack fitted once on the references, then scored on each audited model.
        outputs = {
            k: model_outputs.submit(weights=w, splits=splits, label=f"outputs {k}", **common) for k, w in models.items()
        }
        audit = membership_audit(config, splits, references, outputs)

        refs = {"splits": splits, **references, **audit, **models, "outputs": outputs}
        return show_run(publish_report(artifact_refs=refs, config=config, started=started))
