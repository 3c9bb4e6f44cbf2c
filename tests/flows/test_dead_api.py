"""Runs whose API stops answering end promptly with one line saying so (issue 25, items 10, 11).

* `qmu run` when its temporary Prefect API server dies mid-run: no crawl. Progress bars go to the
  API best effort; once the server is gone the run either stops within seconds with one line
  naming the dead server (exit 1), or finishes and prints its summary path last (exit 0).
  Before the fix every progress call retried the dead API and a one-minute run took 11 minutes.
* `qmu hardware` on the real Quantum Engine without network: it fails within `hardware.timeout_s`
  with the endpoint and the cause. Before the fix it hung with no output for 12+ minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from qmu_core import environment
from tests.support import ONE_WORKER, TinyRun

ROOT = Path(__file__).resolve().parents[2]
EPOCH = re.compile(r": epoch \d+/\d+")


class _Lines:
    """Lines of one stream with the time each arrived, read in a thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def join(self) -> None:
        self._thread.join(timeout=10)

    def find(self, pattern: re.Pattern[str]) -> list[tuple[float, re.Match[str]]]:
        return [(t, m) for t, line in list(self.lines) if (m := pattern.search(line))]


def _wait_for(check: object, timeout: float, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert proc.poll() is None, f"qmu exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.2)


def test_killing_the_temporary_api_server_does_not_make_the_run_crawl(tmp_path: Path) -> None:
    env = environment.child_env(PREFECT_HOME=str(tmp_path / "home"))
    env.pop("PREFECT_API_URL", None)
    root = tmp_path / "artifacts"
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", "train.epochs=100"]
    cmd += ["--set", f"run.artifact_root={root}", *ONE_WORKER]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    server = re.compile(r"temporary Prefect API at \S+ \(pid (\d+)\)")
    try:
        _wait_for(lambda: err.find(server), 300, proc, "temporary API line")
        _wait_for(lambda: out.find(EPOCH) or err.find(EPOCH), 300, proc, "epoch line")
        pid = int(err.find(server)[0][1].group(1))
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            code = None
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.join()
        err.join()
    epochs_after = sorted(t for t, _ in out.find(EPOCH) + err.find(EPOCH) if t > killed)
    gaps = [b - a for a, b in zip([killed, *epochs_after], epochs_after, strict=False)]
    stderr = [line for _, line in err.lines]
    stdout = [line for _, line in out.lines]
    print(
        f"\nexit {code} {ended - killed:.1f} s after killing the API server (pid {pid}); "
        f"{len(epochs_after)} epoch lines after the kill, longest gap {max(gaps, default=0):.1f} s"
    )
    print("last stderr lines:\n  " + "\n  ".join(stderr[-6:]))
    assert code is not None, f"still running 300 s after the kill; last lines: {stderr[-5:]}"
    named = [line for line in stderr if f"temporary Prefect API server (pid {pid}) stopped" in line]
    if code == 0:
        assert stdout and stdout[-1].endswith("summary.json") and Path(stdout[-1]).is_file(), stdout[-3:]
        assert len(named) <= 1, named
    else:
        assert code == 1, stderr[-10:]
        assert len(named) == 1, stderr[-10:]
    assert max(gaps, default=0) < 30, f"progress crawled after the kill: gaps {gaps}"


def _service_account_key(path: Path, token_uri: str) -> str:
    """A valid-looking service-account key whose token endpoint is `token_uri`; returns its private key (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    account = {
        "type": "service_account",
        "project_id": "qmu-key-project-4b7e",
        "private_key_id": "0" * 40,
        "private_key": pem,
        "client_email": "qmu@qmu-no-network.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path.write_text(json.dumps(account))
    return pem


def test_google_engine_without_network_fails_within_the_timeout(tiny_run: TinyRun, tmp_path: Path) -> None:
    """`qmu hardware` on the real Engine with a valid-looking key and no network (issue 25, item 11).

    Every way out (the token endpoint, gRPC through `grpc_proxy`) reaches a local port that
    accepts and never answers, so nothing leaves the machine. The run fails `hardware.timeout_s`
    after the Engine call with exit code 2 and one message naming the endpoint and the cause.

    Credentials never appear in what QMU writes (issue 31, item 5): not the project id (from the
    environment), nor the key file's project, account or private key, on the console (which shows
    every log record the flow sends to its temporary Prefect server, whose database goes with it),
    in any file of the artifact root (reports, artifacts) or of the Prefect home.
    """
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(silent.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    key = tmp_path / "key.json"
    pem = _service_account_key(key, f"http://127.0.0.1:{port}/token")
    project = "qmu-fake-project-9d2a"
    env = environment.child_env(PREFECT_HOME=str(tmp_path / "home"), GOOGLE_CLOUD_PROJECT=project)
    env |= {"GOOGLE_APPLICATION_CREDENTIALS": str(key), "grpc_proxy": f"http://127.0.0.1:{port}"}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "qmu_cli", "hardware", "--preset", "tiny"]
    cmd += ["--set", f"run.artifact_root={tmp_path / 'a'}", "--set", "hardware.timeout_s=3"]
    cmd += ["--set", "hardware.records_per_group=2", "--set", "hardware.measure_references=false"]
    # The models are cached (a copy of the session's `tiny` run): the run trains nothing before the Engine.
    tiny_run.copy_to(tmp_path / "a")
    cmd += ["--set", "hardware.sampler.kind=google_engine"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        try:
            code: int | None = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            code = None
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.join()
        err.join()
        silent.close()
        for conn in held:
            conn.close()
    stderr = [line for _, line in err.lines]
    # The shots of a model are measured once its circuits are prepared: the Engine calls start then.
    measuring = [t for t, line in err.lines if "Task run 'prepare circuits' - Finished" in line]
    took = ended - measuring[-1] if measuring else float("nan")
    print(f"\nexit {code} {took:.1f} s after the last circuits were prepared; last lines:")
    print("  " + "\n  ".join(stderr[-4:]))
    assert code == 2, stderr[-15:]
    said = [line for line in stderr if line.startswith("qmu: error:")]
    assert len(said) == 1, stderr[-15:]
    assert "quantum.googleapis.com" in said[0] and "willow_pink" in said[0], said
    assert "no answer within 3 s" in said[0] and "network" in said[0], said
    assert measuring and took < 3 + 10, f"{took:.1f} s from the Engine stage to the exit"

    secrets = [project, "qmu-key-project-4b7e", "qmu@qmu-key-project-4b7e", pem.splitlines()[1]]
    console = "\n".join(line for _, line in [*out.lines, *err.lines])
    assert not [s for s in secrets if s in console], "a credential on the console"
    files = [f for d in (tmp_path / "a", tmp_path / "home") for f in d.rglob("*") if f.is_file()]
    assert any(f.name == "summary.json" for f in files) and any(f.suffix == ".parquet" for f in files)
    leaked = [(f, s) for f in files for s in secrets if s.encode() in f.read_bytes()]
    assert not leaked, f"credentials written to {leaked}"


def test_progress_calls_to_an_unreachable_api_give_up_and_then_skip_it() -> None:
    """`best_effort` (progress bars, UI artifacts): a refused connection costs one short call.

    Not Prefect's retries with backoff (2 + 4 + 8 + 16 + 32 s through a task run's client, which
    has connected before: the crawl of item 10); later calls return at once while the API is down.
    """
    import uuid

    from prefect.client.schemas.actions import ArtifactUpdate
    from prefect.settings import PREFECT_API_URL

    from qmu_prefect import log as _log

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    api = {PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}
    update = ArtifactUpdate(data=50.0)
    saved = list(_log._down_until)
    try:
        _log._down_until[0] = 0.0
        started = time.monotonic()
        first = _log.best_effort(lambda c: c.update_artifact(artifact_id=uuid.uuid4(), artifact=update), api)
        took_first = time.monotonic() - started
        assert first is None and _log.api_down()
        started = time.monotonic()
        second = _log.best_effort(lambda c: c.update_artifact(artifact_id=uuid.uuid4(), artifact=update), api)
        took_second = time.monotonic() - started
        print(f"\nfirst call {took_first:.2f} s, second {took_second * 1000:.1f} ms")
        assert second is None and took_first < _log.API_TIMEOUT_S + 5 and took_second < 0.1
    finally:
        _log._down_until[:] = saved
