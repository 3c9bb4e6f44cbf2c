"""The temporary Prefect API server a `qmu` command starts early, while its flow imports."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.support import REPO, alive, qmu_env

# A `qmu` command that starts the server early, then fails before it runs a flow.
EARLY_THEN_FAIL = """
import sys
from qmu_prefect import server
server.start_early()
server.start_early()  # a second call starts no second server
((scratch, url, process),) = server._EARLY
print(process.pid, scratch, url, flush=True)
sys.exit(3)
"""


def test_an_early_server_the_command_never_used_stops_with_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EARLY_THEN_FAIL],
        cwd=REPO,
        env=qmu_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    pid, scratch, _ = done.stdout.split()
    deadline = time.monotonic() + 15
    while alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(int(pid))
    assert not Path(scratch).exists()


def test_the_run_uses_the_server_started_early(tmp_path: Path) -> None:
    """`prefect_api` adopts the server `start_early` launched instead of starting another, and stops it."""
    code = """
from qmu_prefect import server
server.start_early()
((_, url, process),) = server._EARLY
with server.prefect_api() as api:
    assert not server._EARLY and api == url, (api, url)
    assert process.poll() is None
assert process.poll() is not None  # stopped when the run's API block ends
print("ok")
"""
    env = qmu_env(tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
