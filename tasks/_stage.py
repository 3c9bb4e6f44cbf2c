"""The stage contract: a Prefect task that writes one artifact, keyed once, cached on that key.

A stage body is a plain function of small, hashable parameters (config sections, artifact
refs, a seed) that returns an `Output` (a table, its typed facts, companion tables). The
`@stage("name")` decorator turns it into a `Stage`:

* `Stage.plan(**params)` computes the artifact ref: the key hashes the stage name, its version
  and every parameter except ``root`` (refs enter by key). It is the ONE place a key is made:
  Prefect's cache key, the missing-file check and the file the body's output is written to
  all come from it.
* Calling, `.submit` and `.map` run (or reuse) the stage and hand back `ArtifactRef`s (or
  futures of them); `.fn` is the body itself, for tests.

Cache records live under the run's artifact root (``<root>/.prefect/cache``), next to the
files they point at. When a cached result's Parquet file has gone missing, the stage runs
again (``refresh_cache``) instead of handing out a dangling reference.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, ParamSpec

from prefect import Task, task
from prefect.cache_policies import TASK_SOURCE, CachePolicy
from prefect.futures import PrefectFuture

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.errors import ArtifactError
from tasks._log import warning

P = ParamSpec("P")

__all__ = ["Stage", "stage"]


def _root_of(params: Mapping[str, Any]) -> Path:
    """The artifact root a stage call writes under: its ``root`` or its first upstream ref's."""
    if "root" in params:
        return Path(params["root"])
    for value in params.values():
        values = value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, ArtifactRef):
                return v.root
    raise ArtifactError("A stage needs a `root` parameter or an ArtifactRef input to know where to write.")


def _resolve(value: Any) -> Any:
    """Wait for futures (also inside lists and dicts) and return their results."""
    if isinstance(value, PrefectFuture):
        return value.result()
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


class Stage(Generic[P]):
    """One pipeline stage (module doc). Call with keyword arguments."""

    def __init__(self, fn: Callable[P, Output], stage_name: str, *, retries: int = 0) -> None:
        if stage_name not in artifacts.STAGE_VERSIONS:
            raise ArtifactError(f"Unknown stage {stage_name!r}; add it to qmu_core.artifacts.STAGE_VERSIONS.")
        self.fn = fn
        self.stage = stage_name
        self._signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> ArtifactRef:
            params = self._bind(*args, **kwargs)
            ref = self._plan(params)
            output = fn(*args, **kwargs)
            if not isinstance(output, Output):
                raise ArtifactError(f"Stage {fn.__name__} must return a qmu_core.artifacts.Output, got {type(output)}.")
            for message in output.warnings:
                warning(message)
            return artifacts.write_output(output, ref, self._inputs(params))

        run.__annotations__ = {**fn.__annotations__, "return": ArtifactRef}
        self.task: Task[..., ArtifactRef] = task(
            run,
            name=fn.__name__,
            cache_policy=self._cache_policy(),
            persist_result=True,
            result_serializer="json",
            retries=retries,
        )

    # ------------------------------------------------------------------ keys

    def _bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    @staticmethod
    def _inputs(params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k not in artifacts.NOT_IN_KEY}

    def _plan(self, params: Mapping[str, Any]) -> ArtifactRef:
        return artifacts.plan(self.stage, self._inputs(params), root=_root_of(params))

    def plan(self, *args: P.args, **kwargs: P.kwargs) -> ArtifactRef:
        """The ref this call will return, without running anything."""
        return self._plan(self._bind(*args, **kwargs))

    def _cache_policy(self, store: Path | None = None) -> CachePolicy:
        """Prefect's cache key: the artifact key, plus where the root is (and TASK_SOURCE).

        The root enters Prefect's key (not the artifact key), so runs with different roots never
        hand each other references into the wrong directory.
        """

        def key(_ctx: Any, parameters: dict[str, Any]) -> str:
            ref = self._plan(parameters)
            where = hashlib.sha256(str(ref.root.resolve()).encode()).hexdigest()[:8]
            return f"{ref.key}-at-{where}"

        policy = CachePolicy.from_cache_key_fn(key) + TASK_SOURCE
        return policy.configure(key_storage=store) if store is not None else policy

    # ------------------------------------------------------------------ running

    def _prepared(self, kwargs: dict[str, Any]) -> Task[..., ArtifactRef]:
        """The task with this call's cache storage; refreshed if its file is missing."""
        ref = self._plan(self._bind(**kwargs))
        options: dict[str, Any] = {"cache_policy": self._cache_policy(ref.root.resolve() / ".prefect" / "cache")}
        if not artifacts.exists(ref):
            options["refresh_cache"] = True
        return self.task.with_options(**options)

    def __call__(self, **kwargs: Any) -> ArtifactRef:
        """Run (or reuse) the stage now and return its artifact ref."""
        kwargs = _resolve(kwargs)
        return self._prepared(kwargs)(**kwargs)

    def submit(self, **kwargs: Any) -> PrefectFuture[ArtifactRef]:
        """Run the stage on the flow's task runner; upstream futures are waited for first."""
        kwargs = _resolve(kwargs)
        return self._prepared(kwargs).submit(**kwargs)

    def map(self, **kwargs: Any) -> list[PrefectFuture[ArtifactRef]]:
        """`submit` once per element of the `list` arguments (all of one length); other
        arguments (tuples included) go to every call unchanged."""
        mapped = {k: v for k, v in kwargs.items() if isinstance(v, list)}
        lengths = {len(v) for v in mapped.values()}
        if len(lengths) != 1:
            raise ArtifactError(f"{self.fn.__name__}.map needs list arguments of one length, got {sorted(lengths)}.")
        (n,) = lengths
        return [self.submit(**{**kwargs, **{k: v[i] for k, v in mapped.items()}}) for i in range(n)]


def stage(stage_name: str, *, retries: int = 0) -> Callable[[Callable[P, Output]], Stage[P]]:
    """Decorator: turn a body that returns an `Output` into a cached `Stage`."""

    def wrap(fn: Callable[P, Output]) -> Stage[P]:
        return Stage(fn, stage_name, retries=retries)

    return wrap
