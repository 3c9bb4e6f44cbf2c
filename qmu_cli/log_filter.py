"""A stage that fails inside a flow run, reported once as its own error.

Prefect raises `UnfinishedRun` / `FailedRun` / `CrashedRun` in the flow for the stages that waited
on a failed one, and logs every task failure with its exception. `FirstErrors` remembers what the
stages raised and keeps the repeats off the terminal; `real_cause` picks what `qmu` reports.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from pathlib import Path

from qmu_core.errors import QMUError

__all__ = ["DiskFullError", "FirstErrors", "chain", "console_without_known_errors", "real_cause"]


class DiskFullError(QMUError):
    """The disk holding the artifact root is full (ENOSPC while a stage wrote under it)."""


_PREFECT_WRAPPERS = ("UnfinishedRun", "FailedRun", "CrashedRun", "UpstreamTaskError")
"""What Prefect raises in a flow for a stage that failed elsewhere: never the cause itself."""


class FirstErrors(logging.Filter):
    """Remembers the exceptions the flow run's stages logged, and keeps their repeats off the terminal.

    Prefect logs every task failure with its exception. On the terminal only and unless `debug`,
    the filter drops them and the lines that repeat them: `main` prints the cause once. The
    Prefect UI and API logs keep everything.
    """

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []
        self.heads: list[str] = []
        self.quiet = True

    def filter(self, record: logging.LogRecord) -> bool:
        """Remember `record`'s exception; whether the terminal shows `record`."""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            ran = record.name.startswith(("prefect.task_runs", "prefect.flow_runs"))  # a stage's or the flow's
            if ran and not _is_wrapper(exc) and exc not in self.errors:
                self.errors.append(exc)
                self.heads.append(str(exc)[:60])
            return not self.quiet
        if not self.quiet:
            return True
        text = record.getMessage()
        if "Finished in state NotReady(" in text or any(name in text for name in _PREFECT_WRAPPERS):
            return False  # a stage that waited on the failed one, or Prefect's wrapper of the cause
        return not any(head and head in text for head in self.heads)

    def first(self) -> BaseException | None:
        """The first QMU error the stages raised, else their first error."""
        for exc in self.errors:
            if isinstance(exc, QMUError):
                return exc
        return self.errors[0] if self.errors else None


def _is_wrapper(exc: BaseException) -> bool:
    return type(exc).__name__ in _PREFECT_WRAPPERS and type(exc).__module__.startswith("prefect")


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes and contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def real_cause(exc: Exception, causes: FirstErrors, root: Path | None) -> BaseException:
    """What to report for `exc`, which the flow raised.

    A QMU error in its chain, else (for Prefect's wrappers) the first error the stages raised, else
    `exc`; a full disk under the artifact root `root` becomes a `DiskFullError` that names it.
    """
    cause: BaseException = exc
    qmu = next((e for e in chain(exc) if isinstance(e, QMUError)), None)
    if qmu is not None:
        cause = qmu
    elif any(_is_wrapper(e) for e in chain(exc)):
        cause = causes.first() or exc
    full = next((e for e in chain(cause) if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if full is not None:
        where = f"the artifact root {root}" if root is not None else "the artifact root"
        cause = DiskFullError(
            f"The disk holding {where} is full ({full.strerror}"
            + (f", writing {full.filename}" if full.filename else "")
            + "). Free space on it (`qmu artifacts gc --root ROOT` removes what no run needs), or set "
            "run.artifact_root to a directory on another disk."
        )
    return cause


@contextlib.contextmanager
def console_without_known_errors(causes: FirstErrors, *, debug: bool) -> Iterator[None]:
    """Inside: `causes` filters Prefect's console handlers (quiet unless `debug`)."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    causes.quiet = not debug
    root = logging.getLogger()
    if not any(isinstance(h, PrefectConsoleHandler) for h in root.handlers):
        setup_logging()
    handlers = [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]
    for handler in handlers:
        handler.addFilter(causes)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(causes)
