"""Stage tasks: Prefect tasks cached on the artifact key of what they write.

The cache key is `qmu_core.artifacts.stage_key` of the task's parameters: its config section(s),
the keys of its upstream artifacts and the stage version (plus `TASK_SOURCE`, so editing a task
body invalidates it). Prefect's cache records are kept under the run's ``artifact_root`` (in
``.prefect/cache``), next to the Parquet files they point at, so deleting that directory
forgets the cache too. (Prefect keeps the small JSON results themselves in its own storage.)

If the Parquet file a cached result points at has gone missing, the stage runs again
(``refresh_cache``) instead of handing out a dangling reference.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, ParamSpec

from prefect import Task, task
from prefect.cache_policies import TASK_SOURCE, CachePolicy

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef

P = ParamSpec("P")

__all__ = ["Stage", "stage"]


def _root_of(params: dict[str, Any]) -> Path:
    if "root" in params:
        return Path(params["root"])
    for value in params.values():
        if isinstance(value, ArtifactRef):
            return value.root
        if isinstance(value, list | tuple) and value and isinstance(value[0], ArtifactRef):
            return value[0].root
        if isinstance(value, dict):
            refs = [v for v in value.values() if isinstance(v, ArtifactRef)]
            if refs:
                return refs[0].root
    raise TypeError("A stage task needs a `root` parameter or an ArtifactRef input.")


def stage_cache(stage_name: str) -> CachePolicy:
    """Cache on the stage's artifact key (config slice + upstream keys + stage version).

    The artifact root is added to Prefect's key (not to the artifact key), so runs with
    different roots never hand each other references into the wrong directory.
    """

    def key(_ctx: Any, parameters: dict[str, Any]) -> str:
        where = hashlib.sha256(str(_root_of(parameters).resolve()).encode()).hexdigest()[:8]
        return f"{artifacts.stage_key(stage_name, parameters)}-at-{where}"

    return CachePolicy.from_cache_key_fn(key) + TASK_SOURCE


class Stage(Generic[P]):
    """A stage: a Prefect task plus the planning that keeps cache and files in step.

    Call it like the function (keyword arguments); ``.fn`` is the plain function for tests and
    ``.task`` the Prefect task.
    """

    def __init__(self, fn: Callable[P, ArtifactRef], stage_name: str, *, retries: int = 0) -> None:
        self.fn = fn
        self.stage = stage_name
        self._signature = inspect.signature(fn)
        self.task: Task[P, ArtifactRef] = task(
            fn,
            name=fn.__name__,
            cache_policy=stage_cache(stage_name),
            persist_result=True,
            result_serializer="json",
            retries=retries,
        )

    def plan(self, *args: P.args, **kwargs: P.kwargs) -> ArtifactRef:
        """The ref this call will return, without running anything."""
        params = self._signature.bind(*args, **kwargs)
        params.apply_defaults()
        return artifacts.plan(self.stage, params.arguments, root=_root_of(params.arguments))

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> ArtifactRef:
        """Run (or reuse) the stage and return its artifact ref."""
        ref = self.plan(*args, **kwargs)
        store = ref.root.resolve() / ".prefect"
        options: dict[str, Any] = {
            "cache_policy": stage_cache(self.stage).configure(key_storage=store / "cache"),
        }
        if not artifacts.exists(ref):
            options["refresh_cache"] = True
        return self.task.with_options(**options)(*args, **kwargs)


def stage(stage_name: str, *, retries: int = 0) -> Callable[[Callable[P, ArtifactRef]], Stage[P]]:
    """Decorator: turn a function that writes one artifact into a cached `Stage`."""

    def wrap(fn: Callable[P, ArtifactRef]) -> Stage[P]:
        return Stage(fn, stage_name, retries=retries)

    return wrap
