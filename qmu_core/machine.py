"""What a measurement ran on: the commit, the CPU, the cores, the date and the package versions.

Benchmarks (bench/) and the reproduction report (`qmu_core.reproduction`) record it beside their
numbers, so a number is never quoted without its machine.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "REPO", "describe", "peak_rss_mb", "reset_peak_rss"]

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("tensorflow", "tensorflow-quantum", "cirq-core", "qsimcirq", "prefect", "numpy")


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def _cpu() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def describe() -> dict[str, Any]:
    """Commit (and whether the work tree was dirty), CPU, cores, load, date (UTC), Python and package versions."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain")),
        "cpu": _cpu(),
        "cores": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "packages": versions,
    }


def reset_peak_rss() -> bool:
    """Start this process's peak resident memory (``VmHWM``) afresh (Linux ``clear_refs``); False if it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since it started or since `reset_peak_rss`, in MB (Linux only)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    found = next((line.split()[1] for line in lines if line.startswith("VmHWM:")), None)
    return None if found is None else round(int(found) / 1024, 1)
