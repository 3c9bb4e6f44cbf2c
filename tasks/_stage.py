"""The stage contract: a Prefect task that writes one artifact, keyed once, reused from the root.

A stage body is a plain function of small, hashable parameters (config sections, artifact
refs, a seed) that returns an `Output` (a table, its typed facts, companion tables, warnings).
The `@stage("name")` decorator turns it into a `Stage`:

* `Stage.plan(**params)` computes the artifact ref: the key hashes the stage name, its version
  and every parameter except ``root`` (refs enter by key). It is the ONE place a key is made.
  A model plug-in's stages also hash what the plug-in builds (``model_plugin``:
  `qmu_core.plugins.fingerprint`), so a changed plug-in circuit is never served from the cache;
  a stage that runs an unlearning plug-in (``method_plugin``) or attack plug-ins (``attack_plugins``)
  hashes their identity (`qmu_core.plugins.identity`: package, version, source).
* Reuse is decided from the artifact root alone (`qmu_core.artifacts.verify`): the file at the
  key, its integrity record and the SHA-256 recorded when it was written, plus a digest of the
  body's source (so editing a task body recomputes it, as Prefect's TASK_SOURCE would). A
  reused stage finishes in a state named ``Cached``; a missing, truncated or tampered file is
  rebuilt, never handed on. Every input ref must match its seal (`artifacts.require_seal`)
  before the stage is reused or run: a stage never reads, nor hands on a result of, an input
  that changed after it was written (upstream stages of a run have rebuilt theirs by then).
  Nothing read from the root names code: Prefect keeps no cache
  records or result files for stages (``persist_result=False``, no cache policy), so another
  ``PREFECT_HOME``, a deleted ``~/.prefect`` or a copied root changes nothing.
* A per-key file lock makes concurrent runs on one root compute each artifact once.
* Once the run stops on a signal or a cancel (`qmu_core.workers.cancel`), no stage starts: each
  ends Cancelled at once, before it reads or writes anything.
* Every stage logs one line: its stage, its key, and ``cached`` or ``computed in <s>``.
* Calling, `.submit` and `.map` run the stage and hand back `ArtifactRef`s (or futures of
  them); `.fn` is the body itself, for tests. ``PREFECT_TASKS_REFRESH_CACHE=true`` (what
  ``qmu run --refresh`` sets) recomputes every stage.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, ParamSpec

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_TASKS_REFRESH_CACHE
from prefect.states import Cancelled, Completed, State

from qmu_core import artifacts, plugins, storage, workers
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import METHOD_PLUGINS, AttackConfig, ModelConfig
from qmu_core.errors import ArtifactError
from qmu_prefect.flow import rebuilds
from qmu_prefect.log import finishing_progress, info, warning

P = ParamSpec("P")

# A worker process that died is retried once; the line that says so goes to the stage's log.
workers.set_notifier(warning)

__all__ = ["Stage", "collecting", "stage"]

_COLLECTORS: list[set[tuple[ArtifactRef, str]]] = []
_COLLECTORS_LOCK = threading.Lock()


@contextlib.contextmanager
def collecting() -> Iterator[set[tuple[ArtifactRef, str]]]:
    """Every artifact a stage of this process reuses or writes while open, with its stage's code digest.

    What a study record lists (`qmu_core.study_records`). Stages running in other processes
    (Dask workers) are not seen.
    """
    found: set[tuple[ArtifactRef, str]] = set()
    with _COLLECTORS_LOCK:
        _COLLECTORS.append(found)
    try:
        yield found
    finally:
        with _COLLECTORS_LOCK:
            _COLLECTORS[:] = [c for c in _COLLECTORS if c is not found]


def _collect(ref: ArtifactRef, code: str) -> None:
    with _COLLECTORS_LOCK:
        for found in _COLLECTORS:
            found.add((ref, code))


def _root_of(params: Mapping[str, Any]) -> Path | str:
    """The artifact root a stage call writes under: its ``root`` or its first upstream ref's.

    A directory or a URL root (`qmu_core.storage`; ``Path(url)`` would collapse its ``//``).
    """
    if "root" in params:
        return storage.normalize(params["root"])
    for value in params.values():
        values = value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, ArtifactRef):
                return v.root
    raise ArtifactError("A stage needs a `root` parameter or an ArtifactRef input to know where to write.")


def _may_rebuild_tampered() -> bool:
    """Whether this stage call may rebuild a cached file that does not match its seal.

    Outside a flow (tests, scripts), and in every flow not declared with ``rebuild=False`` (`qmu_flow`).
    """
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return rebuilds(ctx.flow if ctx is not None else None)


def _refs(value: Any) -> list[ArtifactRef]:
    """Every `ArtifactRef` in a parameter value (also inside lists, tuples and dicts)."""
    if isinstance(value, ArtifactRef):
        return [value]
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _refs(v)]
    return []


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

    def __init__(self, fn: Callable[P, Output], stage_name: str, *, retries: int = 0, label: str | None = None) -> None:
        if stage_name not in artifacts.STAGE_VERSIONS:
            raise ArtifactError(f"Unknown stage {stage_name!r}; add it to qmu_core.artifacts.STAGE_VERSIONS.")
        self.fn = fn
        self.stage = stage_name
        self._signature = inspect.signature(fn)
        self.code = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> ArtifactRef | State:
            if workers.is_cancelled():  # the run is stopping (signal, cancel): no stage starts now
                return Cancelled(message=f"{fn.__name__} not started: the run was stopped.")
            params = self._bind(*args, **kwargs)
            ref = self._plan(params)
            for upstream in _refs(list(params.values())):  # never read, nor reuse a result of, an unverified input
                artifacts.require_seal(upstream)
            with artifacts.key_lock(ref):
                why = artifacts.verify(ref, code=self.code)
                if why is None and not PREFECT_TASKS_REFRESH_CACHE.value():
                    info(f"stage {self.stage} {ref.key}: cached")
                    _collect(ref, self.code)
                    return Completed(name="Cached", data=ref, message=f"reused {ref.key}")
                if why is not None and artifacts.seal_path(ref).exists():
                    tampered = artifacts.exists(ref) and artifacts.check_seal(ref) is not None
                    if tampered and not _may_rebuild_tampered():
                        artifacts.require_seal(ref)  # raises SealError naming the file
                    warning(f"{ref.key} cannot be reused ({why}); rebuilding it.")
                started = time.monotonic()
                workers.clear_peak_rss()
                try:
                    with finishing_progress():  # the body's UI progress bars end at 100 %
                        output = fn(*args, **kwargs)
                except workers.Cancelled as exc:  # the run was cancelled: the flow's log says so once
                    return Cancelled(message=str(exc))
                if not isinstance(output, Output):
                    raise ArtifactError(
                        f"Stage {fn.__name__} must return a qmu_core.artifacts.Output, got {type(output)}."
                    )
                for message in output.warnings:
                    warning(message)
                artifacts.write_output(output, ref, self._inputs(params), code=self.code)
            peak = workers.last_peak_rss_mb()
            took = f"computed in {time.monotonic() - started:.1f}s, wrote {ref.location}"
            info(f"stage {self.stage} {ref.key}: {took}" + ("" if peak is None else f"; worker peak RSS {peak:.0f} MB"))
            _collect(ref, self.code)
            return ref

        run.__annotations__ = {**fn.__annotations__, "return": ArtifactRef}
        self.task: Task[..., ArtifactRef] = task(
            run,
            name=fn.__name__,
            task_run_name=label,
            cache_policy=NO_CACHE,
            persist_result=False,
            retries=retries,
        )

    # ------------------------------------------------------------------ keys

    def _bind(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    @staticmethod
    def _inputs(params: Mapping[str, Any]) -> dict[str, Any]:
        inputs = {k: v for k, v in params.items() if k not in artifacts.NOT_IN_KEY}
        plugin = [v for v in params.values() if isinstance(v, ModelConfig) and v.is_plugin]
        if plugin:  # built-in models keep their keys: nothing is added for them
            inputs["model_plugin"] = plugins.fingerprint(plugin[0])
        method = params.get("method")
        if isinstance(method, str) and method in METHOD_PLUGINS:  # built-in methods: nothing added
            inputs["method_plugin"] = plugins.identity(plugins.UNLEARNING, method)
        attacks = [name for v in params.values() if isinstance(v, AttackConfig) for name in v.plugins]
        if attacks:
            inputs["attack_plugins"] = {name: plugins.identity(plugins.ATTACKS, name) for name in attacks}
        return inputs

    def _plan(self, params: Mapping[str, Any]) -> ArtifactRef:
        return artifacts.plan(self.stage, self._inputs(params), root=_root_of(params))

    def plan(self, *args: P.args, **kwargs: P.kwargs) -> ArtifactRef:
        """The ref this call will return, without running anything."""
        return self._plan(self._bind(*args, **kwargs))

    # ------------------------------------------------------------------ running

    def _named(self, label: str | None) -> Task[..., ArtifactRef]:
        """The task, its runs named `label` ("train ref-03") instead of the stage's default."""
        if label is None:
            return self.task
        return self.task.with_options(task_run_name=label.replace("{", "{{").replace("}", "}}"))

    def __call__(self, *, label: str | None = None, **kwargs: Any) -> ArtifactRef:
        """Run (or reuse) the stage now and return its artifact ref (`label`: the task run's name)."""
        return self._named(label)(**_resolve(kwargs))

    def submit(self, *, label: str | None = None, **kwargs: Any) -> PrefectFuture[ArtifactRef]:
        """Run the stage on the flow's task runner and return at once.

        Upstream futures (also inside lists and dicts) are handed to Prefect, which waits for them
        where the task runs, so the flow goes on submitting independent stages and the graph shows the
        edges. `label` names the task run in the UI ("unlearn ssd r1"); default: the stage's label.
        """
        return self._named(label).submit(**kwargs)

    def map(self, *, labels: list[str] | None = None, **kwargs: Any) -> list[PrefectFuture[ArtifactRef]]:
        """`submit` once per element of the `list` arguments (all of one length).

        Other arguments (tuples included) go to every call unchanged. `labels`: one task-run name each.
        """
        mapped = {k: v for k, v in kwargs.items() if isinstance(v, list)}
        lengths = {len(v) for v in mapped.values()}
        if len(lengths) != 1:
            raise ArtifactError(f"{self.fn.__name__}.map needs list arguments of one length, got {sorted(lengths)}.")
        (n,) = lengths
        if labels is not None and len(labels) != n:
            raise ArtifactError(f"{self.fn.__name__}.map got {len(labels)} labels for {n} calls.")
        return [
            self.submit(label=labels[i] if labels else None, **{**kwargs, **{k: v[i] for k, v in mapped.items()}})
            for i in range(n)
        ]


def stage(stage_name: str, *, retries: int = 0, label: str | None = None) -> Callable[[Callable[P, Output]], Stage[P]]:
    """Decorator: turn a body that returns an `Output` into a `Stage`.

    `label` names its task runs in the UI, a format string of the body's parameters
    (``"train {which}"``); default: the body's name with Prefect's short suffix.
    """

    def wrap(fn: Callable[P, Output]) -> Stage[P]:
        return Stage(fn, stage_name, retries=retries, label=label)

    return wrap
