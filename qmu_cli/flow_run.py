"""A flow run in `qmu`'s own process.

It runs against the user's Prefect API or a temporary one, reports errors once as their real cause
(`log_filter`) and handles stops (`signals`).
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from qmu_cli import signals
from qmu_cli.log_filter import FirstErrors, chain, console_without_known_errors, real_cause
from qmu_core.config import QMUConfig
from qmu_core.storage import is_url, local_dir

__all__ = ["run_flow", "start_early"]


def start_early() -> None:
    """Launch the temporary Prefect server (if the run needs one) before the flow's modules import."""
    from qmu_prefect.server import start_early as start

    start()


def run_flow(args: argparse.Namespace, config: QMUConfig, flow: Any, *params: Any) -> int:
    """Run `flow(*params)` against a Prefect API; print the summary path it returns."""
    root = local_dir(config.run.artifact_root)  # a URL root's temporary files are in its mirror
    signals.ACTIVE_ROOTS.append(root)
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

    from qmu_core import workers
    from qmu_prefect import runner
    from qmu_prefect.server import prefect_api

    causes = FirstErrors()
    # Inside a flow run Prefect's SIGTERM handler replaces `signals.terminate`; the runner chains in
    # front of it and calls this, so SIGTERM arms the same exit fallback as Ctrl-C (`signals.interrupt`).
    hook = functools.partial(signals.arm_fallback, 143)
    runner.on_sigterm.append(hook)
    try:
        with (
            prefect_api(),
            temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: bool(args.refresh)}),
            console_without_known_errors(causes, debug=args.debug),
        ):
            try:
                summary = flow(*params)
            except Exception as exc:
                cause = real_cause(exc, causes, root)
                if cause is exc:
                    raise
                if any(e is cause for e in chain(exc)):
                    raise cause from None  # its own traceback; not the wrapper's
                raise cause from exc
    finally:
        runner.on_sigterm.remove(hook)
        workers.shutdown()  # nothing left running when the summary path is printed
    _say_where(summary)
    print(summary)
    return 0


def _say_where(summary: str) -> None:
    """One stderr line: the run folder and, after a temporary API server, how to keep runs in the UI.

    The run folder's index.html shows the reports in a browser.
    """
    from prefect.settings import PREFECT_API_URL

    folder = summary.rsplit("/", 1)[0]
    index = f"{folder}/index.html"
    shown = index if is_url(index) or Path(index).is_file() else folder
    keep = "; to keep runs in the Prefect UI: `make ui`, then PREFECT_API_URL=http://127.0.0.1:4200/api"
    ui = "" if PREFECT_API_URL.value() else keep
    print(f"qmu: run folder {folder} (open {shown} in a browser){ui}", file=sys.stderr)
