"""How fast `qmu run` stops on Ctrl-C (SIGINT) or SIGTERM; one JSON object per line.

    python bench/interrupt_latency.py                  # SIGINT and SIGTERM, 3 times each
    python bench/interrupt_latency.py --repeats 5 --signal SIGTERM

Each repeat runs `qmu run --preset tiny --set train.epochs=500` in a fresh subprocess with its own
PREFECT_HOME and artifact root (so it starts its own temporary Prefect API server), waits until a
model is training (the first ``epoch 1/500`` line) and one second more, sends the signal and
reports the seconds until the process exited (`exit_s`) and until its temporary API server was
gone too (`server_gone_s`), with the exit code. The test suite asserts what happens on an
interrupt (tests/flows/test_reliability.py); this script measures how long it takes, which
depends on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from qmu_core import environment

ROOT = Path(__file__).resolve().parents[1]
SERVER = re.compile(r"temporary Prefect API at \S+ \(pid (\d+)\)")


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return status.exists() and "zombie" not in status.read_text().lower()


def measure(sig: signal.Signals, tmp: Path) -> dict[str, object]:
    """One interrupted `qmu run` in `tmp`: seconds from the signal to the exit and to the server's end."""
    env = environment.child_env(PREFECT_HOME=str(tmp / "home"))
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", "train.epochs=500"]
    cmd += ["--set", f"run.artifact_root={tmp / 'root'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if "epoch 1/500" in line:
            break
    else:
        raise SystemExit("the run ended before training:\n" + "".join(lines[-20:]))
    found = SERVER.search("".join(lines))
    server = int(found.group(1)) if found else None
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    proc.communicate(timeout=300)
    exited = time.monotonic() - sent
    while server is not None and _alive(server) and time.monotonic() - sent < 300:
        time.sleep(0.05)
    return {
        "signal": sig.name,
        "exit_code": proc.returncode,
        "exit_s": round(exited, 2),
        "server_gone_s": round(time.monotonic() - sent, 2) if server is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--signal", choices=["SIGINT", "SIGTERM"], action="append")
    args = parser.parse_args()
    for name in args.signal or ["SIGINT", "SIGTERM"]:
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="qmu-interrupt-") as tmp:
                print(json.dumps(measure(signal.Signals[name], Path(tmp))), flush=True)


if __name__ == "__main__":
    main()
