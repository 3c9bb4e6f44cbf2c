"""The CLI's error contract: one message, a non-zero exit, tracebacks only under --debug."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qmu_cli import root, signals
from qmu_core import environment

ROOT = Path(__file__).resolve().parents[2]
ENV = environment.child_env()


def _qmu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qmu_cli", *args], cwd=ROOT, env=ENV, capture_output=True, text=True)


def test_bad_config_is_one_message_and_exit_2() -> None:
    done = _qmu("config", "show", "--set", "train.epochs=-3")
    assert done.returncode == 2
    assert "train.epochs" in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.startswith("qmu: error:")


def test_debug_shows_the_traceback() -> None:
    done = _qmu("--debug", "config", "show", "--set", "train.epochs=-3")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConfigError" in done.stderr


def test_export_of_a_missing_run_names_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert root.main(["export", str(tmp_path / "nothing" / "summary.json"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_bad_config_file_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    assert root.main(["config", "show", "--config", str(path)]) == 2
    assert "expected a JSON object" in capsys.readouterr().err


def test_unexpected_errors_are_one_line_too(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(_args: object) -> int:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(root, "_dispatch", boom)
    assert root.main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: disk on fire" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        root.main(["--debug", "config", "show"])


@pytest.mark.parametrize(
    ("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_a_swallowed_interrupt_still_stops_the_process(sig: int, code: int, word: str) -> None:
    """Ctrl-C / SIGTERM raise in the main thread; a swallowed exception still ends the process.

    If something on the way up swallows the exception, the fallback timer ends the process with the
    right code and one line.
    """
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from qmu_cli import signals
        signal.signal(signal.SIGINT, signals.interrupt)
        signal.signal(signal.SIGTERM, signals.terminate)
        try:
            os.kill(os.getpid(), {int(sig)})
            time.sleep(1)
        except BaseException:
            pass  # a library catching BaseException
        time.sleep(60)
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert time.monotonic() - started < signals.FALLBACK_S + 15
    assert done.stderr.count(word) == 1
