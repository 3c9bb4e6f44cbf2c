"""A model job named, not imported: the flow's process hands jobs to worker processes without loading TensorFlow.

`qmu_core.jobs` imports TensorFlow and TFQ: about 490 MB more peak memory in the importing process. The model
stages run their jobs in worker processes (`qmu_core.workers.run`), so the process running the
flow never needs that module: a `Job` is pickled as its name and imports `qmu_core.jobs` where it
is called. The import-linter contract "The study side and the flow's process import no
TensorFlow" keeps `tasks`, `flows` and the Prefect platform code off it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["JOBS_MODULE", "JOB_NAMES", "Job"]

JOBS_MODULE = "qmu_core.jobs"
JOB_NAMES = frozenset(
    {"import_weights_split", "train_split", "train_many_split", "outputs_split", "unlearn_split", "relearn_split"}
)
"""The functions of `JOBS_MODULE` a `Job` may name (tests/qmu_core/test_workers.py checks each exists)."""


@dataclass(frozen=True)
class Job:
    """``qmu_core.jobs.<name>``, imported only where it is called: in a worker process.

    Pickled as its name; calling it imports `JOBS_MODULE` (TensorFlow with it) in the process that
    calls it. `run` calls it in a worker, or in place in a Dask worker process.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in JOB_NAMES:
            raise ValueError(f"{JOBS_MODULE} has no job {self.name!r}; known: {sorted(JOB_NAMES)}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``qmu_core.jobs.<name>(*args, **kwargs)``."""
        return getattr(importlib.import_module(JOBS_MODULE), self.name)(*args, **kwargs)

    def __str__(self) -> str:
        return self.name
