"""What the pipeline's model stages do, on split tables: train, predict outputs, unlearn.

Each function takes DataFrames and configs and returns an `Output` (table + typed facts) for
the stage to write; nothing here knows about Prefect or files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from qmu_core import artifacts, external, frames, unlearning
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig, UnlearnConfig, derive_seed
from qmu_core.errors import ArtifactError
from qmu_core.identity import Which
from qmu_core.membership import held_out_mask, member_mask, request_rows
from qmu_core.progress import Progress
from qmu_core.provenance import ModelFacts, RelearnFacts
from qmu_core.qnn import training
from qmu_core.qnn.models import QNN
from qmu_core.splits import SplitTable, read_splits
from qmu_core.unlearning import relearn
from qmu_core.unlearning.base import Evals, Request, acc_and_loss, accuracy
from qmu_core.unlearning.guard import guarded_run, make_guard

__all__ = [
    "deletion_request",
    "import_weights_split",
    "load_model",
    "outputs",
    "relearn_split",
    "train",
    "train_many",
    "train_many_split",
    "train_split",
    "unlearn",
    "unlearn_split",
]


def train(
    splits: SplitTable,
    model: ModelConfig,
    train: TrainConfig,
    classes: Sequence[int],
    *,
    which: str,
    seed: int,
    without_request: bool = False,
    progress: Progress | None = None,
) -> Output:
    """Train model `which` (target, oracle or shadow-<i>) from scratch on its member rows.

    The oracle shares the target's seed: same initial weights and batch order, minus the
    forget set. `without_request` drops the rows the deletion request deletes
    (`membership.request_rows`) from a reference model's half: U-LiRA's retrained reference,
    with the reference model's seeds.
    """
    frame = splits.frame
    keep = member_mask(frame, which, seed=seed)
    if without_request:
        keep &= ~request_rows(frame, splits.facts.request)
    rows = frame[keep]
    model_seed = _model_seed(seed, which)
    qnn = training.model_for(model, classes, seed=model_seed, image_side=splits.image_side)
    started = time.perf_counter()
    history = training.fit(
        qnn,
        training.model_inputs(rows, model),
        training.class_index(rows["label"].to_numpy(), classes),
        train,
        seed=derive_seed(model_seed, "batches"),
        progress=progress,
    )
    name = f"{which}-retrained" if without_request else which
    facts = ModelFacts(
        which=name,
        n_train=len(rows),
        history=history,
        wall_s=round(time.perf_counter() - started, 3),
        circuit_evals=2 * train.epochs * len(rows),
    )
    return Output(qnn.weights_frame(name), facts)


def _model_seed(seed: int, which: str) -> int:
    """Model `which`'s initial-weight seed; its batch order derives from it (the oracle shares the target's)."""
    return derive_seed(seed, "target" if which == "oracle" else which)


def train_split(
    splits: ArtifactRef,
    model: ModelConfig,
    train_cfg: TrainConfig,
    classes: Sequence[int],
    *,
    which: str,
    seed: int,
    without_request: bool = False,
    progress: Progress | None = None,
) -> Output:
    """`train` on the split stored at `splits` (what a worker process runs: it reads the table itself)."""
    return train(
        read_splits(splits),
        model,
        train_cfg,
        classes,
        which=which,
        seed=seed,
        without_request=without_request,
        progress=progress,
    )


def import_weights_split(
    splits: ArtifactRef, model: ModelConfig, classes: Sequence[int], *, path: str, sha256: str
) -> Output:
    """The `model` artifact of the weights file `path` (content `sha256`), checked against the architecture `model`.

    A model trained outside QMU (`qmu_core.external`), on the split stored at `splits`.

    Raises:
        DataError: If the file changed since the run was planned, or does not fit the model.
    """
    table = read_splits(splits)
    facts = external.external_facts(table.frame, path, sha256)
    qnn = training.model_for(model, classes, seed=0, image_side=table.image_side)
    shapes = {k: tuple(int(d) for d in v.shape) for k, v in qnn.variables.items()}
    symbols = [str(s) for s in qnn.weight_symbols]
    values = external.as_variables(external.read_weights(path), symbols, shapes, path)
    qnn.load_frame(frames.tensor_rows(values, dtype=np.float32))
    return Output(qnn.weights_frame(external.EXTERNAL), facts)


def train_many(
    splits: SplitTable,
    model: ModelConfig,
    train_cfg: TrainConfig,
    classes: Sequence[int],
    *,
    whiches: Sequence[str],
    seed: int,
    progress: Progress | None = None,
) -> list[Output]:
    """`train` of several reference models in one program (`qmu_core.qnn.stacked.fit_many`).

    Each model keeps its own member rows, initial-weight seed and batch-order seed (those
    `train` uses), so model m equals `train` of ``whiches[m]`` to float rounding. Its bits may
    depend on which models share the program, so callers fix the groups (`qmu_core.grouping`).
    Models whose training sets differ in size train in one `fit_many` per size. The facts'
    ``wall_s`` is each size group's wall time divided by its model count.

    Returns:
        One `Output` per name of `whiches`, in that order.
    """
    from qmu_core.qnn.stacked import QNNStack, fit_many

    frame = splits.frame
    rows = {w: frame[member_mask(frame, w, seed=seed)] for w in whiches}
    model_seed = {w: _model_seed(seed, w) for w in whiches}
    by_size: dict[int, list[str]] = {}
    for w in whiches:
        by_size.setdefault(len(rows[w]), []).append(w)
    out: dict[str, Output] = {}
    for names in by_size.values():
        started = time.perf_counter()
        stack = QNNStack(
            model, n_classes=len(classes), image_side=splits.image_side, seeds=[model_seed[w] for w in names]
        )
        histories = fit_many(
            stack,
            [training.model_inputs(rows[w], model) for w in names],
            [training.class_index(rows[w]["label"].to_numpy(), classes) for w in names],
            train_cfg,
            seeds=[derive_seed(model_seed[w], "batches") for w in names],
            progress=progress,
        )
        wall = round((time.perf_counter() - started) / len(names), 3)
        for m, w in enumerate(names):
            facts = ModelFacts(
                which=w,
                n_train=len(rows[w]),
                history=histories[m],
                wall_s=wall,
                circuit_evals=2 * train_cfg.epochs * len(rows[w]),
            )
            out[w] = Output(stack.model(m).weights_frame(w), facts)
    return [out[w] for w in whiches]


def train_many_split(
    splits: ArtifactRef,
    model: ModelConfig,
    train_cfg: TrainConfig,
    classes: Sequence[int],
    *,
    whiches: Sequence[str],
    seed: int,
    progress: Progress | None = None,
) -> list[Output]:
    """`train_many` on the split stored at `splits` (what a worker process runs)."""
    return train_many(read_splits(splits), model, train_cfg, classes, whiches=whiches, seed=seed, progress=progress)


def load_model(weights: pd.DataFrame, splits: SplitTable, model: ModelConfig, classes: Sequence[int]) -> QNN:
    """Rebuild a trained QNN from its `model` table."""
    qnn = training.model_for(model, classes, seed=0, image_side=splits.image_side)
    return qnn.load_frame(weights)


def outputs(
    weights: pd.DataFrame, splits: SplitTable, model: ModelConfig, classes: Sequence[int], *, loss: str
) -> Output:
    """Class probabilities, loss and correctness of one model on every record of the split."""
    qnn = load_model(weights, splits, model, classes)
    model_id = str(weights["model_id"].iloc[0])
    frame = training.predict_outputs(qnn, splits.frame, model_cfg=model, classes=classes, loss=loss, model_id=model_id)
    return Output(frame)


def outputs_split(
    weights: ArtifactRef, splits: ArtifactRef, model: ModelConfig, classes: Sequence[int], *, loss: str
) -> Output:
    """`outputs` of the model stored at `weights` on the split stored at `splits`.

    This is what a worker process runs: it reads both tables itself.

    Raises:
        ArtifactError: If the weights are not finite (`artifacts.read`) or give outputs that are
            not (finite but huge weights), naming the weights' file; nothing is written.
    """
    out = outputs(artifacts.read(weights), read_splits(splits), model, classes, loss=loss)
    why = artifacts.non_finite(out.frame, "outputs")
    if why is not None:
        raise ArtifactError(
            f"The model {weights.location} gives outputs that are not finite ({why}); its weights are "
            "unusable. Delete it and its seal, then rerun `qmu run` to rebuild it."
        )
    return out


def deletion_request(
    splits: SplitTable,
    qnn: QNN,
    model: ModelConfig,
    classes: Sequence[int],
    unlearn: UnlearnConfig,
    *,
    seed: int,
    trained_on: str = "target",
    membership_seed: int = 0,
) -> tuple[Request, int]:
    """The `Request` a method reads, and the circuit evaluations its stopping target cost.

    Forget set: the rows model `trained_on` trained on that the request deletes
    (`membership.request_rows`; for the target, the ``target_train`` rows marked ``is_forget``);
    retained set: its other training rows. Held out: the records it could have drawn and did not
    (`membership.held_out_mask`: the target's ``target_holdout``). Stopping target
    (`qmu_core.unlearning.base`): ``stop_forget_acc`` for a class request; for a sample request,
    `qnn`'s mean loss on the held-out records. Guard (`qmu_core.unlearning.guard`): a slice of the
    held-out records outside the request, by `seed`. A reference model (`trained_on` ``ref-<i>``,
    drawn with `membership_seed`, the run's root seed) gets its own request this way (U-LiRA).
    """
    frame = splits.frame
    kind = splits.facts.request
    trained = member_mask(frame, trained_on, seed=membership_seed)
    deleted = request_rows(frame, kind)
    forget, retain = frame[trained & deleted], frame[trained & ~deleted]
    held = held_out_mask(frame, trained_on, seed=membership_seed)
    evals = Evals()

    def xy(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if rows.empty:  # a reference model that drew none of the requested records: nothing to forget
            return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        return training.model_inputs(rows, model), training.class_index(rows["label"].to_numpy(), classes)

    request = Request(kind, *xy(forget), *xy(retain), stop_acc=unlearn.stop_forget_acc)
    # guard pool: records the model never trained on, of the classes it keeps (a sample request keeps
    # every class; its same-class controls are held-out records too, as its stopping target reads them)
    held_out = frame[held & ~(frame["is_forget"].to_numpy() & (kind == "class"))]
    if len(held_out):
        request = replace(request, guard=make_guard(qnn, *xy(held_out), unlearn, derive_seed(seed, "guard"), evals))
    if kind == "samples":  # the held-out records' mean loss (`qmu_core.unlearning.base`)
        held_acc, held_loss = acc_and_loss(qnn, *xy(frame[held]), evals)
        request = replace(request, stop_acc=held_acc, stop_loss=held_loss)
    return request, evals.count


def unlearn(
    weights: pd.DataFrame,
    splits: SplitTable,
    model: ModelConfig,
    classes: Sequence[int],
    unlearn: UnlearnConfig,
    train_cfg: TrainConfig,
    *,
    method: str,
    seed: int,
    trained_on: str = "target",
    membership_seed: int = 0,
    progress: Progress | None = None,
) -> Output:
    """Make a trained model forget the deletion request's records with `method`.

    `trained_on` names the model the weights are (the target, or a reference model for U-LiRA,
    whose own request `deletion_request` builds from its training half drawn with
    `membership_seed`). Returns the unlearned weights; the facts say whether the method reached
    its stopping target, its wall time and its circuit evaluations; a warning if it did not reach it.
    """
    qnn = load_model(weights, splits, model, classes)
    request, spent = deletion_request(
        splits, qnn, model, classes, unlearn, seed=seed, trained_on=trained_on, membership_seed=membership_seed
    )
    model_id = Which.unlearned(method).model_id
    model_id = model_id if trained_on == "target" else f"{trained_on}-{model_id}"
    if len(request.x_forget) == 0:  # a reference model that drew none of the requested records (U-LiRA)
        facts = ModelFacts(which=model_id, method=method, passes=0, reached_stop=True, note="nothing to unlearn")
        return Output(qnn.weights_frame(model_id), facts)
    impl = unlearning.method(method, unlearn, train_cfg)
    started = time.perf_counter()
    kept = guarded_run(
        type(impl), unlearn, train_cfg, qnn, request,
        seed=derive_seed(seed, "unlearn", method), progress=progress,
    )  # fmt: skip
    result = kept.result
    wall = time.perf_counter() - started
    last = result.history[-1] if result.history else {}
    if not last:  # the guard undid the first pass at every step-size factor
        now = "no pass was kept, so the model is unchanged,"
    elif request.stop_loss is not None:
        now = f"forget-set loss is {last.get('forget_loss', float('nan')):.3f}"
    else:
        now = f"forget-set accuracy is still {last.get('forget_acc', float('nan')):.3f}"
    facts = ModelFacts(
        which=model_id,
        method=method,
        passes=len(result.history),
        reached_stop=result.reached_stop,
        history=result.history,
        stop_acc=request.stop_acc,
        stop_loss=request.stop_loss,
        stop_target=request.target(),
        note=result.note,
        step_scale=kept.scale,
        steps_tried=kept.tried,
        guard_acc=kept.guard_acc,
        guard_floor=kept.guard_floor,
        guard_stopped=result.guard_stopped,
        wall_s=round(wall, 3),
        circuit_evals=result.circuit_evals + spent,
    )
    warnings = (
        ()
        if result.reached_stop
        else (
            f"{method}: {now} after {len(result.history)} pass(es) (stopping target: {request.target()}): the "
            f"method did not reach its stopping rule; it {result.note.split(';')[0]}. " + unlearning.hint(method),
        )
    )
    return Output(qnn.weights_frame(model_id), facts, warnings=warnings)


def unlearn_split(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: Sequence[int],
    unlearn_cfg: UnlearnConfig,
    train_cfg: TrainConfig,
    *,
    method: str,
    seed: int,
    trained_on: str = "target",
    membership_seed: int = 0,
    progress: Progress | None = None,
) -> Output:
    """`unlearn` on stored artifacts (what a worker process runs)."""
    table = read_splits(splits)
    return unlearn(
        artifacts.read(weights),
        table,
        model,
        classes,
        unlearn_cfg,
        train_cfg,
        method=method,
        seed=seed,
        trained_on=trained_on,
        membership_seed=membership_seed,
        progress=progress,
    )


def relearn_split(
    weights: ArtifactRef,
    before: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: Sequence[int],
    unlearn_cfg: UnlearnConfig,
    train_cfg: TrainConfig,
    *,
    seed: int,
) -> Output:
    """Relearn time of the model at `weights` (`qmu_core.unlearning.relearn`).

    Measured against the forget accuracy of the model at `before`.
    """
    table = read_splits(splits)
    frame = table.frame
    forget = frame[(frame["role"] == "target_train") & frame["is_forget"]]
    x, y = training.model_inputs(forget, model), training.class_index(forget["label"].to_numpy(), classes)
    original = load_model(artifacts.read(before), table, model, classes)
    target = relearn.RELEARN_SHARE * accuracy(original, x, y, Evals())
    weights_table = artifacts.read(weights)
    qnn = load_model(weights_table, table, model, classes)
    steps, curve = relearn.relearn_steps(
        qnn,
        x,
        y,
        train_cfg,
        target_acc=target,
        batch_size=unlearn_cfg.batch_size,
        max_steps=unlearn_cfg.relearn_max_steps,
        seed=derive_seed(seed, "relearn"),
    )
    model_id = str(weights_table["model_id"].iloc[0])
    frame_out = pd.DataFrame({"model_id": model_id, "step": np.arange(len(curve), dtype=np.int64), "forget_acc": curve})
    facts = RelearnFacts(which=model_id, target_acc=target, steps=steps, max_steps=unlearn_cfg.relearn_max_steps)
    return Output(frame_out, facts)
