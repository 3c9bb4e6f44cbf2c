"""Ctrl-C and SIGTERM in `qmu`: one line, no partial files of this process, a prompt exit.

Both raise in the main thread (`interrupt`, `terminate`) and arm a fallback timer that exits the
process even if a library swallows that exception on its way up (`arm_fallback`). Inside a flow
run Prefect replaces the SIGTERM handler; `qmu_prefect.runner` chains in front of it and arms the
same fallback (`flow_run`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "ACTIVE_ROOTS",
    "FALLBACK_S",
    "SIGNALLED",
    "Terminated",
    "arm_fallback",
    "handled",
    "interrupt",
    "interrupted",
    "stop_signal",
    "terminate",
]

ACTIVE_ROOTS: list[Path] = []
"""The local artifact roots (a URL root's mirror) of the flow runs this process started: a stop
removes this process's partial files under them."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


FALLBACK_S = 5.0
"""Seconds after Ctrl-C / SIGTERM before the process exits even if the exception the signal raised
was swallowed on its way up (a library catching BaseException in the main thread: seen once in
~10 interrupted runs, the run then went on to the end)."""

_STOPPING = threading.Event()
SIGNALLED: list[int] = []
"""The exit code of every stop signal this process got (`arm_fallback`)."""


def arm_fallback(code: int) -> None:
    """Exit with `code` in `FALLBACK_S` unless the stop got through by then.

    Also stops the training workers and every later stage now (`qmu_core.workers.cancel`, in a
    thread: a signal handler may have interrupted the main thread inside the workers' lock).
    """
    SIGNALLED.append(code)
    workers = sys.modules.get("qmu_core.workers")
    if workers is not None:
        threading.Thread(target=workers.cancel, daemon=True, name="qmu-stop-workers").start()

    def fire() -> None:
        if not _STOPPING.is_set():
            _stop(code)

    timer = threading.Timer(FALLBACK_S, fire)
    timer.daemon = True
    timer.start()


def terminate(_signum: int, _frame: object) -> None:
    """The SIGTERM handler."""
    arm_fallback(143)
    raise Terminated


def interrupt(_signum: int, _frame: object) -> None:
    """The SIGINT (Ctrl-C) handler."""
    arm_fallback(130)
    raise KeyboardInterrupt


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Inside: `terminate` and `interrupt` handle SIGTERM and SIGINT (in the main thread only)."""
    handlers = {signal.SIGTERM: terminate, signal.SIGINT: interrupt}
    previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()} if _main_thread() else {}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_signal() -> KeyboardInterrupt | None:
    """The stop this process got, as the exception its signal raises; None if there was none.

    An error raised after a stop signal is the stop's own consequence (a stage Cancelled).

    An error raised after a stop signal is the stop's own consequence (a stage Cancelled).
    """
    if not SIGNALLED:
        return None
    return Terminated() if SIGNALLED[-1] == 143 else KeyboardInterrupt()


def _say_stopped(code: int) -> None:
    """Remove this process's partial files and print the one line."""
    _STOPPING.set()
    from qmu_core.housekeeping import remove_own_temp_files

    for root in ACTIVE_ROOTS:
        remove_own_temp_files(root)
    print(f"qmu: {'terminated' if code == 143 else 'interrupted'}; finished stages are kept and reused next time",
          file=sys.stderr)  # fmt: skip


def _stop(code: int) -> None:
    """`_say_stopped`, then exit at once: busy training threads cannot be stopped."""
    _say_stopped(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def interrupted(exc: KeyboardInterrupt) -> int:
    """Stop: one line, no partial files of this process, and no waiting for busy worker threads."""
    code = 143 if isinstance(exc, Terminated) else 130
    if threading.active_count() > 1:  # other threads (training, the fallback timer): end here
        _stop(code)
    _say_stopped(code)
    return code
