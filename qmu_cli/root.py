"""`qmu` command line: run the pipeline locally, show the config.

    qmu run --preset tiny [--set section.field=value ...] [--config file.json] [--refresh]
    qmu config show [--preset NAME] [--set ...]
    qmu config schema | reference
    qmu export RUN_OR_MODEL DIR [--phase before|after_<method>|oracle]
    qmu audit RUN_OR_MODEL [--preset NAME] [--set attack.field=value ...] [--refresh]
    qmu hardware --preset paper_angle [--set hardware.sampler.kind=...] [--refresh]
    qmu shots --preset paper_angle [--set hardware.shots=[10,100,1000]] [--refresh]
    qmu reproduce [--seeds 3] [--mnist DIR] [--publish-to docs/reproduction] [--set ...] [--refresh]

`qmu run` prints Prefect's progress and, as its last line of stdout, the path of summary.json.
Errors print one message and exit 2 (bad input, missing data, a full disk) or 1 (anything
unexpected); `--debug` adds the traceback. A stage that fails inside a flow run is reported as its
own error (the first QMU error of the run's stages, else the first root error), never as the
`UnfinishedRun` / `FailedRun` / `CrashedRun` Prefect raises for the stages that waited on it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from typing import NoReturn

from qmu_cli import artifacts, audit, config, export, hardware, reproduce, run, signals, split
from qmu_core.errors import QMUError

__all__ = ["entry", "main"]

_FIXES = {
    "DefaultCredentialsError": (
        "Google credentials: point GOOGLE_APPLICATION_CREDENTIALS at a readable service-account key file, "
        "or run `gcloud auth application-default login`."
    ),
}
"""A fix to print beside root errors that are no QMUError, by their class name."""


def parser() -> argparse.ArgumentParser:
    """The `qmu` parser: every command group adds its subcommands (in `qmu --help`'s order)."""
    p = argparse.ArgumentParser(prog="qmu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="Show the full traceback of an error.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (run, export, audit, split, hardware, reproduce, config, artifacts):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qmu` console script."""
    args = parser().parse_args(argv)
    with signals.handled():
        try:
            return _dispatch(args)
        except QMUError as exc:
            stop = signals.stop_signal()
            if stop is not None:  # the stop's own consequence (a stage Cancelled): the signal's exit, not an error
                return signals.interrupted(stop)
            if args.debug:
                raise
            print(f"qmu: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            return signals.interrupted(exc)
        except Exception as exc:
            stop = signals.stop_signal()
            if stop is not None:
                return signals.interrupted(stop)
            if args.debug:
                raise
            fix = _FIXES.get(type(exc).__name__)
            print(
                f"qmu: unexpected error: {type(exc).__name__}: {exc}"
                + (f" Fix: {fix}" if fix else "")
                + "\n(run `qmu --debug ...` for the traceback)",
                file=sys.stderr,
            )
            return 1


def entry() -> NoReturn:
    """The `qmu` console script (and `python -m qmu_cli`): `main`, then a quick exit.

    Exit handlers run and the streams are flushed, then the process ends without tearing the
    interpreter down: that teardown (freeing Prefect's, pandas' and scikit-learn's modules) takes
    about 1.4 s after the last line, with every file already written and closed. In-process
    callers use `main`, which returns the code.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, or a usage error it has already printed
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    atexit._run_exitfuncs()  # what a normal exit runs: logging, multiprocessing, Prefect's services
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`qmu ... | head`)
            stream.flush()
    os._exit(code)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command (its module's handler); errors propagate to `main`."""
    return int(args.handler(args))
