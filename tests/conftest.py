"""Shared fixtures: environment, a Prefect test server, a `tiny` run, trained models, MNIST.

`prefect_api` (module scope; ``pytestmark = pytest.mark.usefixtures("prefect_api")``) points a
module's flows at the session's Prefect test server, as `prefect_test_harness` did per module
without starting a server each time. `tiny_run` is one real `tiny` pipeline run, made once per
session (once for all xdist workers) and shared read-only (`tests.support.TinyRun`): a test that
writes into an artifact root copies it first (`TinyRun.copy_to`).
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qmu_core import environment

environment.apply()  # before any test module imports Prefect or TensorFlow

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
SERVER_STARTUP_TIMEOUT = 180  # s; a cold start (migrations) takes ~15 s on 2 busy cores


@pytest.fixture
def mnist_dir() -> Path:
    """The real MNIST test images shipped beside the repo (never copied into it)."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST files not found in {SHARED_MNIST}")
    return SHARED_MNIST


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_test_server() -> Iterator[Any]:
    """What `prefect_test_harness` starts, once per session: a Prefect API server subprocess.

    It listens on a free port and keeps its own SQLite database in a temporary directory. Use it
    through `prefect_api`.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    with tempfile.TemporaryDirectory(prefix="qmu-prefect-test-") as tmp:
        from qmu_prefect.server import seed_home

        seed_home(Path(tmp), Path(tmp) / "prefect-test.db")  # migrated once per machine, not per session
        database = "sqlite+aiosqlite:///" + str(Path(tmp) / "prefect-test.db")
        server = SubprocessASGIServer(port=_free_port())
        with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: database}):
            server.start(timeout=SERVER_STARTUP_TIMEOUT)  # the subprocess takes its settings now
        try:
            yield server
        finally:
            server.stop()


def _drain_workers() -> None:
    """Send the buffered logs and events before the API goes (as `prefect_test_harness` does)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        with contextlib.suppress(RuntimeError):  # the log worker may not have started
            result = APILogWorker.instance().drain()
            if inspect.isawaitable(result):
                await result
        result = EventsWorker.drain_all()
        if inspect.isawaitable(result):
            await result

    run_coro_as_sync(drain())


@contextlib.contextmanager
def using_server(server: Any) -> Iterator[None]:
    """Flows, tasks and clients of this process talk to `server` inside the block."""
    import prefect.context
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    prior = SubprocessASGIServer._instances.get(None)
    SubprocessASGIServer._instances[None] = server  # what flow code asking for "the" server finds
    try:
        with (
            temporary_settings(updates={PREFECT_API_URL: server.api_url}),
            prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
        ):
            try:
                yield
            finally:
                _drain_workers()
    finally:
        if prior is not None:
            SubprocessASGIServer._instances[None] = prior
        else:
            SubprocessASGIServer._instances.pop(None, None)


@pytest.fixture(scope="module")
def prefect_api(prefect_test_server: Any) -> Iterator[None]:
    """The module's flows run against the session's Prefect test server (its own database)."""
    with using_server(prefect_test_server):
        yield


def _make_tiny_run(server: Any, root: Path) -> Any:
    """Run the real `tiny` pipeline into `root` under the Prefect test server `server`."""
    import json

    from flows.pipeline import qmu_pipeline
    from qmu_core.config import preset
    from tests.support import TinyRun, task_states

    cfg = preset("tiny", run={"artifact_root": str(root)})
    with using_server(server):
        state = qmu_pipeline(cfg, return_state=True)
        assert state.is_completed(), state.message
        flow_run_id = state.state_details.flow_run_id
        assert flow_run_id is not None
        # 1 split, 2 + n train, membership, m unlearn, n + m + 2 outputs, audit, evaluate, m + 1
        # relearn, compare, report (m methods, n reference models)
        m = len(cfg.unlearn.methods)
        states = task_states(flow_run_id, 11 + 3 * m + 2 * cfg.attack.n_shadow)
    path = Path(state.result())
    return TinyRun(root, path, flow_run_id, states, json.loads(path.read_text()), server.api_url)


@pytest.fixture(scope="session")
def tiny_run(prefect_test_server: Any, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Any:
    """The real `tiny` pipeline, run once per test session into an artifact root, shared read-only.

    Under `make test` the xdist workers share one: the first worker that needs it runs it (under a
    file lock, in the session's common temporary directory) and records it; the others wait for
    that record and read it. Its flow run lives on the Prefect test server of the worker that ran
    it (`TinyRun.server`); tests that read the flow run itself from the API use `tiny_run_here`.
    """
    import fcntl

    from tests.support import TinyRun

    if worker_id == "master":  # not under xdist
        return _make_tiny_run(prefect_test_server, tmp_path_factory.mktemp("tiny-run"))
    shared = tmp_path_factory.getbasetemp().parent / "tiny-run"
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if this worker dies
        record = shared / "tiny-run.json"
        if record.is_file():
            return TinyRun.load(record)
        (shared / "root").mkdir(parents=True, exist_ok=True)
        run = _make_tiny_run(prefect_test_server, shared / "root")
        run.save(record)
        return run


@pytest.fixture(scope="session")
def tiny_run_here(tiny_run: Any, prefect_test_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`tiny_run` if its flow run is on this worker's Prefect test server, else a fresh `tiny` run made here."""
    if tiny_run.server == prefect_test_server.api_url:
        return tiny_run
    return _make_tiny_run(prefect_test_server, tmp_path_factory.mktemp("tiny-run-here"))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, Any]], tuple[Any, Any, Any]]:
    """`tests.support.trained_model_artifact` of a ModelConfig case (`EXPORT_CASES`), once per session.

    Each case trains in an artifact root of its own and is shared read-only: ``get(kw)`` returns
    ``(model_ref, splits_table, qnn)``.
    """
    from qmu_core.config import ModelConfig
    from tests.support import case_id, trained_model_artifact

    cache: dict[str, tuple[Any, Any, Any]] = {}

    def get(kw: dict[str, Any]) -> tuple[Any, Any, Any]:
        name = case_id(kw)
        if name not in cache:
            cache[name] = trained_model_artifact(tmp_path_factory.mktemp("trained"), ModelConfig(**kw))
        return cache[name]

    return get


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the long files first, so that `make test`'s two xdist workers finish together.

    The end-to-end files (`tests/flows/`, the top-level `tests/test_*.py`) run real pipelines and
    servers; the unit tests after them fill the gaps. The sort is stable: a file's tests keep their
    order, and every worker sees the same order (xdist requires it).
    """
    root = Path(__file__).resolve().parent

    def rank(item: pytest.Item) -> int:
        rel = item.path.resolve().relative_to(root)
        return 0 if rel.parts[0] == "flows" else 1 if len(rel.parts) == 1 else 2

    items.sort(key=rank)
