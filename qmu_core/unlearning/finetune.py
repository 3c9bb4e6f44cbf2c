"""Fine-tuning (FT) on the retained set only: the forget set is never read for training.

Training continues from the trained model on R for ``unlearn.finetune_epochs`` epochs with the
train section's recipe (momentum, loss, batch size) at ``unlearn.finetune_learning_rate``, through
`qmu_core.qnn.training.fit` (one optimizer for the whole run: its moments and the batch order carry
over between epochs). The optimizer is SGD with momentum (``unlearn.finetune_optimizer=sgd``, the
default) or the train section's (``train``). Adam restarted at a trained model is a poor fine-tuner:
its first steps are about ``lr * sign(g)`` for every weight, also where the gradient is float
rounding, so the fine-tuned model depends on the CPU's kernels. Measured on `default`'s target
(oneDNN capped at SSE41 against the machine's own): Adam's fine-tuned models disagree on the
predicted class of 1.5 % of the records (probabilities up to 0.998 apart), SGD's on none (5e-5 apart
on average, as the target itself). Forgetting comes only
from what fine-tuning overwrites (catastrophic forgetting). After every epoch the forget-set
accuracy is measured for the history (next to ``fit``'s mean training loss and running accuracy
on the retained batches of that epoch, ``loss`` and ``retain_acc``); it does not stop the run
(a fixed number of epochs, no stopping rule). ``reached_stop`` says whether the final forget
accuracy is at or below the request's target. Circuit evaluations: two per retained record per
epoch (the gradient steps), one per forget record per epoch (the accuracy check).
"""

from __future__ import annotations

from qmu_core.config import UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import fit
from qmu_core.unlearning.base import Evals, Method, Request, Result, forget_state

__all__ = ["FineTune"]


class FineTune(Method):
    """Fine-tune on R (module doc). Reads R only (U only for the reported forget accuracy)."""

    name = "finetune"
    reads = "R"

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Fine-tune on the retained records for ``unlearn.finetune_epochs`` epochs (module doc)."""
        evals = Evals()
        epochs = self.cfg.finetune_epochs
        xr, yr = request.x_retain, request.y_retain
        if len(xr) == 0:
            state = forget_state(model, request, evals)
            return Result(
                [{"loss": float("nan"), **state}],
                request.reached(state),
                evals.count,
                note="no retained records: nothing to fine-tune on, the model is unchanged",
            )
        recipe: dict[str, object] = {"epochs": epochs, "learning_rate": self.cfg.finetune_learning_rate}
        if self.cfg.finetune_optimizer == "sgd":  # steps in proportion to the gradient (module doc)
            recipe["optimizer"] = "sgd"
        train = self.train.model_copy(update=recipe)
        history: list[dict[str, float]] = []

        def after_epoch(epoch: int, total: int, metrics: dict[str, float]) -> None:
            evals.gradient(len(xr))
            record = {"loss": metrics["loss"], "retain_acc": metrics["acc"], **forget_state(model, request, evals)}
            history.append(record)
            if progress is not None:
                progress(epoch, total, record)

        before = self.snapshot(model)
        fit(model, xr, yr, train, seed=seed, progress=after_epoch)
        result = Result(
            history,
            request.reached(history[-1]),
            evals.count,
            note=f"{epochs} epochs on the retained set, {train.optimizer} at learning rate {train.learning_rate:g}",
        )
        return self.checked_once(model, request, before, result)

    @classmethod
    def scaled(cls, cfg: UnlearnConfig, factor: float) -> UnlearnConfig:
        """Fine-tuning's step is ``finetune_learning_rate``."""
        return cfg.model_copy(update={"finetune_learning_rate": cfg.finetune_learning_rate * factor})
