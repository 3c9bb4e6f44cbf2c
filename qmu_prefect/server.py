"""The Prefect API a `qmu run` talks to: the user's server, or a temporary one QMU owns.

With ``PREFECT_API_URL`` set, the server must answer ``/health`` (checked before any work).
Otherwise QMU starts a temporary API server for the run, like Prefect's own ephemeral server,
with three differences that make interrupts clean and state bounded:

* it runs in its own session, so Ctrl-C in the terminal reaches only ``qmu`` (which then
  reports the interrupt to a live server and exits), never the server first;
* the kernel stops it when ``qmu`` dies, even by SIGKILL (``PR_SET_PDEATHSIG``), and ``qmu``
  stops it on every exit path;
* its database and result storage live in a temporary directory deleted afterwards, so
  ``~/.prefect`` does not grow with every run. A run's record is its artifact root
  (``runs/<name>/summary.json``); use a real server (``make ui``) to keep history;
* if it dies during the run (killed, out of memory), the run stops within a second with one
  line saying so and exit code 1 (`_Watch`), instead of crawling through Prefect's retries
  of every call to a dead API.

A fresh database costs about 13 s of migrations on 2 cores, so the first run migrates an
empty template once (``~/.cache/qmu/prefect-<version>/``, about 1 MB, never written to after)
and every run starts from a copy of it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from qmu_core import environment
from qmu_core.errors import QMUError

__all__ = ["ServerError", "lost_server_message", "on_server_lost", "prefect_api", "seed_home", "start_early"]

# Runs in the child: die with the parent (Linux), then become the uvicorn server.
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"  # PR_SET_PDEATHSIG
    "if os.getppid() != int(sys.argv[1]): sys.exit(0)\n"  # the parent is already gone
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


class ServerError(QMUError):
    """The Prefect API cannot be reached or started."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def _tls() -> ssl.SSLContext:
    """The verified TLS context httpx builds by default, built once (each plain `httpx.get` loads the CA bundle)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=timeout, verify=_tls()).status_code == 200
    except httpx.HTTPError:
        return False


def check_api(url: str) -> None:
    """Raise `ServerError` if the Prefect API at `url` does not answer."""
    if not _healthy(url, timeout=5.0):
        raise ServerError(
            f"PREFECT_API_URL={url} does not answer ({url.rstrip('/')}/health). Start that server "
            "(`make ui`), fix the URL, or unset PREFECT_API_URL to let qmu start a temporary one."
        )


def _template() -> Path:
    """An empty, migrated Prefect database (and memo store) for this Prefect version."""
    import prefect

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qmu" / f"prefect-{prefect.__version__}"
    if (cache / "prefect.db").is_file():
        return cache
    print(f"qmu: preparing an empty Prefect database in {cache} (once; about 15 s)", file=sys.stderr, flush=True)
    build = Path(tempfile.mkdtemp(prefix="qmu-prefect-template-"))
    try:
        with _server_in(build):
            pass  # started once: migrations ran, block types registered
        staged = Path(tempfile.mkdtemp(prefix=".staging-", dir=_mkdir(cache.parent)))
        with sqlite3.connect(build / "prefect.db") as src, sqlite3.connect(staged / "prefect.db") as dst:
            src.backup(dst)  # consistent copy, WAL included
        if (build / "memo_store.toml").is_file():
            shutil.copy2(build / "memo_store.toml", staged / "memo_store.toml")
        with contextlib.suppress(OSError):  # another run may have won the race: both are fine
            os.rename(staged, cache)
        shutil.rmtree(staged, ignore_errors=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return cache


def seed_home(home: Path, database: Path | None = None) -> None:
    """Put a copy of the migrated empty database (and its memo store) into a new server's `home`.

    A server started on it skips about 10 s of migrations and block registration, as the
    temporary server does. `database`: where the server's SQLite file is (default
    ``home/prefect.db``). Existing files are left alone.
    """
    template = _template()
    targets = {"prefect.db": database or home / "prefect.db", "memo_store.toml": home / "memo_store.toml"}
    for name, target in targets.items():
        if (template / name).is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(template / name, target)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


SCRATCH_PREFIX = "qmu-prefect-"


def _remove_dead_scratch() -> None:
    """Scratch directories of runs that were killed (SIGKILL leaves no chance to clean up)."""
    for path in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)


def _launched() -> tuple[Path, str, subprocess.Popen[bytes]]:
    """A new scratch directory seeded with the template database, and a server launched on it (not awaited)."""
    _remove_dead_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    try:
        seed_home(scratch)
        url, process = _launch(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return scratch, url, process


_EARLY: list[tuple[Path, str, subprocess.Popen[bytes]]] = []
"""The temporary server `start_early` launched, until `prefect_api` takes it."""


def start_early() -> None:
    """Launch the temporary API server now if the run will need one (no PREFECT_API_URL).

    A CLI command calls this before it imports its flow: the server boots (about 3 s) while the
    flow's modules import, and `prefect_api` then finds it running. Unused, it stops at exit.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value() or _EARLY:
        return
    _EARLY.append(_launched())
    atexit.register(_discard_early)


def _discard_early() -> None:
    while _EARLY:
        scratch, _, process = _EARLY.pop()
        _stop(process)
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _temporary_server(startup_timeout: float = 120.0) -> Iterator[str]:
    scratch, url, process = _EARLY.pop() if _EARLY else _launched()
    try:
        with _serving(url, process, startup_timeout):
            print(f"qmu: temporary Prefect API at {url} (pid {process.pid})", file=sys.stderr, flush=True)
            watch = _Watch(process)
            try:
                yield url
            finally:
                watch.stop()  # before the server is stopped on purpose
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _server_in(scratch: Path, startup_timeout: float = 180.0) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prefect API server on a free port with its home and database in `scratch`."""
    url, process = _launch(scratch)
    with _serving(url, process, startup_timeout):
        yield url, process


def _launch(scratch: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a Prefect API server on a free port with its home and database in `scratch` (not awaited)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = environment.child_env(
        PREFECT_UI_ENABLED="0",
        PREFECT__SERVER_EPHEMERAL="1",
        PREFECT__SERVER_FINAL="1",
        PREFECT_HOME=str(scratch),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{scratch}/prefect.db",
    )
    env.pop("PREFECT_API_URL", None)
    uvicorn = ["-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, str(os.getpid()), *uvicorn],
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return url, process


@contextlib.contextmanager
def _serving(url: str, process: subprocess.Popen[bytes], startup_timeout: float) -> Iterator[None]:
    """Wait until the server at `url` answers; stop it when the block ends."""
    try:
        deadline = time.monotonic() + startup_timeout
        while not _healthy(url, timeout=1.0):
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace")[-2000:] if process.stderr else ""
                raise ServerError(f"The temporary Prefect server exited with code {process.returncode}:\n{err}")
            if time.monotonic() > deadline:
                raise ServerError(f"The temporary Prefect server did not answer within {startup_timeout:.0f} s.")
            time.sleep(0.1)
        yield
    finally:
        _stop(process)


WATCH_EVERY_S = 0.5
"""How often the run checks that its temporary API server is still alive."""


def lost_server_message(pid: int, returncode: int | None) -> str:
    """The one line a run prints when its temporary API server dies under it."""
    how = f"killed by signal {-returncode}" if returncode is not None and returncode < 0 else f"exit {returncode}"
    return (
        f"qmu: the temporary Prefect API server (pid {pid}) stopped during the run ({how}); a run cannot go on "
        "without its API, so it stops here: finished stages are kept and reused next time"
    )


class _Watch:
    """A daemon thread that ends the run at once if the temporary API server dies under it.

    Without its API the run cannot continue: every Prefect call (a task's state, its logs) would
    be retried with backoff for about a minute and then fail. So the watcher prints
    `lost_server_message`, runs the hooks of `on_server_lost` (the CLI removes this process's
    partial files there), and exits with code 1, as the CLI does after Ctrl-C, without waiting
    for busy training threads; worker processes follow their parent.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qmu-api-server-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2 * WATCH_EVERY_S)

    def _run(self) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            if self.process.poll() is not None and not self._stopping.is_set():
                self._lost()
                return

    def _lost(self) -> None:
        from qmu_prefect.log import mark_api_down

        mark_api_down(math.inf)  # progress bars stop calling it at once
        print(lost_server_message(self.process.pid, self.process.returncode), file=sys.stderr, flush=True)
        for hook in list(_ON_LOST):
            done = threading.Thread(target=_quietly, args=(hook,), daemon=True)
            done.start()
            done.join(timeout=5.0)  # best effort: the exit below must happen
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(1)


_ON_LOST: list[Callable[[], object]] = []


def _quietly(hook: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        hook()


@contextlib.contextmanager
def on_server_lost(hook: Callable[[], object]) -> Iterator[None]:
    """Inside: `hook()` runs just before the process exits because the temporary API server died.

    See `_Watch`; e.g. to remove this process's partial files.
    """
    _ON_LOST.append(hook)
    try:
        yield
    finally:
        _ON_LOST.remove(hook)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()


@contextlib.contextmanager
def prefect_api() -> Iterator[str]:
    """The API URL for this run, with Prefect's settings pointing at it while inside."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        check_api(configured)
        yield configured
        return
    # No UI URL: Prefect would print "View at <temporary server>/runs/...", a page that is gone
    # when the run ends. The CLI prints the run folder instead.
    with _temporary_server() as url, temporary_settings(updates={PREFECT_API_URL: url, PREFECT_UI_URL: ""}):
        try:
            yield url
        finally:
            _drain_clients()


def _drain_clients(timeout: float = 10.0) -> None:
    """Send Prefect's buffered logs and events while the temporary server still answers."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # best effort: never mask the run's own outcome
            service.drain_all(timeout=timeout)
