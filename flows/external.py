"""The external audit flow: membership attacks on a model trained outside QMU.

A user trained a model with their own code, on records QMU can name (``data.members``: their
sample_ids), with a recipe QMU can repeat (the ``train`` section: epochs, optimiser, batch size,
learning rate). QMU reads the weights (`qmu_core.external`), trains the reference models with that
recipe, and scores the model with every attack, on the same records and the same fitted attacks as
its own retraining of the model (the target QMU trains on the listed records with the recipe and
``run.seed``). The report says the model came from outside and how far QMU's retraining lands from
it (the recipe check, `qmu_core.report.external`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

from flows.steps import membership_audit, reference_models, repeat_seed, split
from qmu_core import housekeeping, workers
from qmu_core.config import QMUConfig, preset
from qmu_core.errors import QMUError
from qmu_core.external import EXTERNAL, RETRAINED, check_external
from qmu_prefect.flow import qmu_flow
from qmu_prefect.runs import fail_with, run_name, tag_run
from qmu_prefect.ui import show_run, track
from tasks import external_model, model_outputs, publish_report, train_model

WEIGHTS_EXAMPLES = ["/data/my_model/weights.npz", "/data/my_model/weights.parquet"]


@qmu_flow("qmu-audit-external", flow_run_name=run_name("external"))
def qmu_audit_external(
    config: QMUConfig = preset("default"),  # noqa: B008 - the form starts from `default`
    weights: Annotated[str, Field(examples=WEIGHTS_EXAMPLES)] = "",
    recipe_seeds: Annotated[int, Field(ge=1, le=16)] = 3,
) -> str:
    """Membership audit of a model trained outside QMU, with QMU's retraining of it beside it.

    Returns summary.json's path.

    Args:
        config: The model's architecture (model), the records it trained on (data.members, with the
            data section), its training recipe (train) and the attacks (attack).
        weights: The weights file: .npz or .parquet, one entry per circuit symbol plus head_w and
            head_b (docs/data.md).
        recipe_seeds: How many times QMU trains the model itself with the recipe (seeds run.seed, then
            derived ones), for the recipe check: their spread is how far one recipe's trainings land
            from each other. The first is audited beside the given weights.
    """
    try:
        sha256 = check_external(config, weights)
    except QMUError as exc:
        return fail_with(str(exc))  # type: ignore[return-value]
    tag_run(config)
    started = time.time()
    path = str(Path(weights).expanduser().resolve())
    print(f"qmu-audit-external: auditing {path} (SHA-256 {sha256[:12]}) trained on {config.data.members}")
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
        workers.configure(config.run.workers)
        common = {"model": config.model, "classes": config.data.classes}

        # The listed records train; held-out, shadow-pool and test records are drawn from the rest.
        base, splits = split(config)
        # The given weights, checked against the architecture before anything trains.
        given = external_model(splits=base, path=path, sha256=sha256, **common)
        references = reference_models(config, base)
        # QMU's own training of the same architecture on the same records with the recipe, with
        # `recipe_seeds` seeds (the recipe check: how far trainings with this recipe land from each other).
        own = [
            train_model.submit(
                splits=base,
                train=config.train,
                which="target",
                seed=repeat_seed(config, r),
                label=f"train target {r}",
                **common,
            )
            for r in range(recipe_seeds)
        ]
        models = {EXTERNAL: given, RETRAINED: own[0]}
        track(references["reference_models"].values(), "reference models trained")

        # Every attack fitted once on the references, then scored on both.
        look = {"splits": splits, "loss": config.train.loss, **common}
        outputs = {k: model_outputs.submit(weights=w, label=f"outputs {k}", **look) for k, w in models.items()}
        audit = membership_audit(config, splits, references, outputs)
        recipe = {"seed-0": outputs[RETRAINED]} | {
            f"seed-{r}": model_outputs.submit(weights=own[r], label=f"outputs target {r}", **look)
            for r in range(1, recipe_seeds)
        }

        refs = {"splits": splits, **references, **audit, **models, "outputs": outputs, "recipe_outputs": recipe}
        return show_run(publish_report(artifact_refs=refs, config=config, started=started))
