"""The environment variables QMU needs are declared once (`qmu_core.environment`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qmu_core import environment

ROOT = Path(__file__).resolve().parents[2]


def test_apply_sets_only_what_the_user_did_not(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in environment.ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # the user's choice
    environment.apply()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_child_env_adds_the_defaults_then_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    env = environment.child_env(PREFECT_HOME="/x", TF_CPP_MIN_LOG_LEVEL="0")
    assert env["TF_USE_LEGACY_KERAS"] == "1" and env["PREFECT_HOME"] == "/x" and env["TF_CPP_MIN_LOG_LEVEL"] == "0"
    assert environment.child_env()["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_the_module_runs_a_command_with_the_environment() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    script = "import os; print(os.environ['TF_USE_LEGACY_KERAS'], os.environ['PREFECT_SERVER_ANALYTICS_ENABLED'])"
    done = subprocess.run(
        [sys.executable, "-m", "qmu_core.environment", sys.executable, "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "false"]


def test_no_other_file_sets_the_variables() -> None:
    names = "|".join(environment.ENV)
    in_python = re.compile(rf"""["']({names})["']\s*[:,]|\b({names})=["']""")  # {"X": v}, setdefault("X", v), X="v"
    in_shell = re.compile(rf"^\s*(export\s+)?({names})\s*:?=")  # Makefile, shell
    files = [(p, in_shell) for p in (ROOT / "Makefile", *ROOT.glob("*.yaml"), *ROOT.glob(".ci/*")) if p.is_file()]
    for package in ("qmu_core", "qmu_prefect", "qmu_cli", "tasks", "flows", "tests", "bench"):
        files += [(p, in_python) for p in (ROOT / package).rglob("*.py")]
    own = {ROOT / "qmu_core" / "environment.py", Path(__file__).resolve()}
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, setting in files
        if path.resolve() not in own
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if setting.search(line)
    ]
    assert not found, "set these in qmu_core/environment.py only:\n" + "\n".join(found)
