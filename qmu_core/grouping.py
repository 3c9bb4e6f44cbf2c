"""Reference models train in model-batched jobs, one job per worker process for a run's whole set.

The pipeline submits every reference model as its own stage (its own key, artifact, cache check
and task run in the UI; `tasks.training.train_model`). Trained one per worker job, each reference
model paid for its own program: tracing, per-step dispatch and small ops that leave a core idle.
Instead, a run's reference names are cut into one fixed chunk per worker process (`chunks`: the
names sorted, consecutive, balanced), and a chunk trains in ONE worker job
(`qmu_core.jobs.train_many_split`: `qmu_core.qnn.stacked.fit_many`). The first stage of a chunk
that needs training starts its job; the chunk's other stages that need training wait for the
same job; each stage gets its own model's `Output` and writes it as before. Keys, artifacts and
what is reused do not change.

The chunks depend only on the run's names and worker count, never on timing or on what was
cached, so a model's bits do not either: rebuilding one lost reference model retrains its whole
chunk (and writes only that model) and gets the same bits as the first run on this machine. A
model trained in a chunk equals the same model trained alone to float rounding
(`tests/qmu_core/test_grouping.py`). A failed job fails each waiting stage with the job's error (a
dead worker is retried once by `qmu_core.workers.run`, as for any job); a cancel reaches each.

So the worker pool's role is smaller: one job per core for all reference models of a run,
instead of one per model (the target, the oracle and every unlearning method still run one job
each).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from qmu_core import workers
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.errors import ConfigError
from qmu_core.jobref import Job
from qmu_core.progress import Progress

__all__ = ["GROUPS", "TrainingGroups", "chunks"]


def chunks(names: Sequence[str], n: int) -> list[list[str]]:
    """`names` sorted and cut into at most `n` consecutive chunks whose sizes differ by at most one."""
    ordered = sorted(names)
    n = max(1, min(n, len(ordered)))
    size, extra = divmod(len(ordered), n)
    out, start = [], 0
    for i in range(n):
        stop = start + size + (1 if i < extra else 0)
        out.append(ordered[start:stop])
        start = stop
    return out


class TrainingGroups:
    """Runs each chunk of reference models once, for all of its stages that wait (module doc).

    Args:
        run: How a job runs (default `qmu_core.workers.run`); tests may run it in-process.
    """

    def __init__(self, *, run: Callable[..., Any] | None = None) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._jobs: dict[tuple[Any, ...], Future[dict[str, Output]]] = {}
        self._progress: dict[tuple[Any, ...], list[Progress]] = {}

    def train(
        self,
        splits: ArtifactRef,
        model: ModelConfig,
        train: TrainConfig,
        classes: Sequence[int],
        *,
        which: str,
        group: Sequence[str],
        seed: int,
        progress: Progress | None = None,
    ) -> Output:
        """Reference model `which`'s `Output`, from its chunk's job (started here unless running).

        Args:
            splits: The stored split table.
            model: The model section.
            train: The training recipe.
            classes: The classes, in head order.
            seed: The run's seed (each model's seeds derive from it and its name).
            which: The model.
            group: Every reference name of the run (`which` among them); cut by `chunks`.
            progress: Told the chunk's epochs.

        Raises:
            ConfigError: If `which` is not in `group`.
            Whatever the job raised (`qmu_core.workers.WorkerError`, `Cancelled`, a training error).
        """
        if which not in group:
            raise ConfigError(f"Reference model {which!r} is not in its group {list(group)}; pass the run's names.")
        chunk = next(c for c in chunks(group, workers.n_workers()) if which in c)
        recipe = (splits.key, str(splits.root), model.model_dump_json(), train.model_dump_json(), tuple(classes), seed)
        key: tuple[Any, ...] = (*recipe, tuple(chunk))
        with self._lock:
            job = self._jobs.get(key)
            lead = job is None
            if job is None:
                job = self._jobs[key] = Future()
                self._progress[key] = []
            if progress is not None:
                self._progress[key].append(progress)
        if lead:
            self._lead(key, job, splits, model, train, classes, chunk, seed)
        return job.result()[which]

    def _lead(
        self,
        key: tuple[Any, ...],
        job: Future[dict[str, Output]],
        splits: ArtifactRef,
        model: ModelConfig,
        train: TrainConfig,
        classes: Sequence[int],
        chunk: list[str],
        seed: int,
    ) -> None:
        """Run the chunk's job in this thread and hand its outputs to every stage waiting on `job`."""

        def relay(step: int, steps: int, values: dict[str, float]) -> None:
            if len(chunk) > 1:  # fit_many reports the chunk's means, not this stage's model
                values = {f"{k} (mean of {len(chunk)} models)": v for k, v in values.items()}
            with self._lock:
                listeners = list(self._progress.get(key, []))
            for p in listeners:
                p(step, steps, values)

        run = self._run or workers.run
        try:
            outs = run(Job("train_many_split"), splits, model, train, classes, whiches=chunk, seed=seed, progress=relay)
        except Exception as exc:  # noqa: BLE001 - every waiting stage raises the job's error
            job.set_exception(exc)
        else:
            job.set_result(dict(zip(chunk, outs, strict=True)))
        finally:
            with self._lock:  # a later request (a rebuild) runs the chunk again
                self._jobs.pop(key, None)
                self._progress.pop(key, None)


GROUPS = TrainingGroups()
"""The process's chunk runner, used by the reference-model stages."""
