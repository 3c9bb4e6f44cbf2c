"""`qmu` command line: run the pipeline locally, show the config.

    qmu run --preset tiny [--set section.field=value ...] [--config file.json] [--refresh]
    qmu config show [--preset NAME] [--set ...]
    qmu config schema | reference
    qmu export RUN_OR_MODEL DIR [--phase before|after_<method>|oracle]
    qmu audit RUN_OR_MODEL [--preset NAME] [--set attack.field=value ...] [--refresh]
    qmu hardware --preset paper_angle [--set hardware.sampler.kind=...] [--refresh]
    qmu shots --preset paper_angle [--set hardware.shots=[10,100,1000]] [--refresh]

`qmu run` prints Prefect's progress and, as its last line of stdout, the path of summary.json.
Errors print one message and exit 2 (bad input, missing data, a full disk) or 1 (anything
unexpected); `--debug` adds the traceback. A stage that fails inside a flow run is reported as its
own error (the first QMU error of the run's stages, else the first root error), never as the
`UnfinishedRun` / `FailedRun` / `CrashedRun` Prefect raises for the stages that waited on it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Before Prefect or TensorFlow are imported: no telemetry (it logs an ERROR offline), quiet TF.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from qmu_core.config import UNLEARN_METHODS, QMUConfig, check_artifact_root
from qmu_core.docs import reference_markdown
from qmu_core.errors import QMUError
from qmu_core.membership import shadow_warnings
from qmu_core.overrides import apply_overrides, load_config_file, merge_sections
from qmu_core.presets import PRESETS, preset
from qmu_core.storage import is_url, local_dir


def _config(args: argparse.Namespace) -> QMUConfig:
    """The config `--preset`, `--config` and `--set` describe, checked before any work.

    For `qmu run` it also checks that `run.artifact_root` is writable; suspicious but allowed
    settings print `qmu: WARNING: ...` lines on stderr.
    """
    cfg = preset(args.preset)
    if getattr(args, "config", None):
        path = Path(args.config)
        cfg = merge_sections(cfg, load_config_file(path), f"--config {path}")
    cfg = apply_overrides(cfg, args.set or [])
    if args.command == "run":
        check_artifact_root(cfg.run.artifact_root)
    for message in shadow_warnings(cfg.data, cfg.attack):
        print(f"qmu: WARNING: {message}", file=sys.stderr)
    return cfg


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="Start from this preset.")
    p.add_argument("--config", help="JSON file {section: {field: value}} applied after the preset.")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help=(
            "Override one field (value parsed as JSON, else text); a JSON object for a whole section "
            "merges into it (--set 'data={\"n_test\": 50}' keeps the other data fields); repeatable."
        ),
    )


def _export(args: argparse.Namespace) -> int:
    from qmu_core.export import check_out_dir, export_model, resolve_model_ref

    out_dir = check_out_dir(Path(args.out_dir))  # before reading anything
    source = args.source if is_url(args.source) else Path(args.source)  # a URL keeps its `//`
    manifest = export_model(resolve_model_ref(source, phase=args.phase), out_dir)
    print(manifest)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qmu` console script."""
    parser = argparse.ArgumentParser(
        prog="qmu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="Show the full traceback of an error.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Run the pipeline as a local Prefect flow run.")
    _add_config_args(run)
    run.add_argument("--refresh", action="store_true", help="Recompute every stage, ignoring the cache.")
    exp = sub.add_parser("export", help="Export a trained model as Parquet weights + Cirq JSON + manifest.")
    exp.add_argument("source", help="A run directory, its summary.json, or a model .parquet file.")
    exp.add_argument("out_dir", help="Directory to write manifest.json, circuit.json, ansatz.json, *.parquet.")
    exp.add_argument(
        "--phase",
        default="before",
        choices=["before", *(f"after_{m}" for m in UNLEARN_METHODS), "oracle"],
        help="Which model of a run to export (ignored for a .parquet).",
    )
    aud = sub.add_parser(
        "audit",
        help="Membership-audit a run's models or one model artifact, reusing the cached reference models.",
    )
    aud.add_argument("source", help="A run directory, its summary.json, or a model .parquet (trained or unlearned).")
    aud.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="For a model artifact: the preset whose `attack` section to use (a run keeps its own).",
    )
    aud.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="Override a field of the recovered config, e.g. attack.threat_model=labels; repeatable.",
    )
    aud.add_argument("--refresh", action="store_true", help="Recompute every stage, ignoring the cache.")
    hw = sub.add_parser(
        "hardware",
        help="Measure the run's models (before, unlearned, oracle) through hardware.sampler with finite shots.",
    )
    _add_config_args(hw)
    hw.add_argument("--refresh", action="store_true", help="Recompute every stage, ignoring the cache.")
    shots = sub.add_parser("shots", help="Shot-count study: the audit against the shots per record (hardware.shots).")
    _add_config_args(shots)
    shots.add_argument("--refresh", action="store_true", help="Recompute every stage, ignoring the cache.")
    cfg = sub.add_parser("config", help="Show the resolved config or its JSON schema.")
    cfg.add_argument("what", choices=["show", "schema", "reference"])
    _add_config_args(cfg)
    art = sub.add_parser("artifacts", help="List the artifact root, or remove what no run needs (gc).")
    art.add_argument("what", choices=["ls", "gc"])
    art.add_argument(
        "--root",
        default="data/artifacts",
        help="The artifact root (default data/artifacts); for a URL root, its local mirror on this machine.",
    )
    art.add_argument("--dry-run", action="store_true", help="gc: only list what would be removed.")
    args = parser.parse_args(argv)
    handlers = {signal.SIGTERM: _terminate, signal.SIGINT: _interrupt}
    previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()} if _main_thread() else {}
    try:
        return _dispatch(args)
    except QMUError as exc:
        if _SIGNALLED:  # the stop's own consequence (a stage Cancelled): the signal's exit, not an error
            return _interrupted(Terminated() if _SIGNALLED[-1] == 143 else KeyboardInterrupt())
        if args.debug:
            raise
        print(f"qmu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:
        if _SIGNALLED:
            return _interrupted(Terminated() if _SIGNALLED[-1] == 143 else KeyboardInterrupt())
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
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the chosen command; errors propagate to `main`."""
    if args.command == "config":
        if args.what == "schema":
            print(json.dumps(QMUConfig.model_json_schema(), indent=2))
        elif args.what == "reference":
            print(reference_markdown(), end="")
        else:
            print(_config(args).model_dump_json(indent=2))
        return 0
    if args.command == "export":
        return _export(args)
    if args.command == "artifacts":
        return _artifacts(args)
    if args.command == "audit":
        return _audit(args)
    if args.command in ("hardware", "shots"):
        return _hardware(args)
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """`qmu run`: validate, connect to (or start) the Prefect API, run the flow."""
    config = _config(args)
    from flows.pipeline import qmu_pipeline

    return _flow(args, config, qmu_pipeline, config)


def _hardware(args: argparse.Namespace) -> int:
    """`qmu hardware` / `qmu shots`: the run's models measured through a sampler."""
    config = _config(args)
    check_artifact_root(config.run.artifact_root)
    from qmu_core.hardware.evaluate import check_model

    check_model(config.model)
    from flows.hardware import qmu_hardware, qmu_shots

    return _flow(args, config, qmu_hardware if args.command == "hardware" else qmu_shots, config)


def _audit(args: argparse.Namespace) -> int:
    """`qmu audit`: recover the config and models from a run (its name under data/artifacts, its
    folder or summary.json) or from model artifacts (several separated by commas), audit them.

    Checked here before Prefect starts; the flow resolves the same source again. A model
    artifact takes `--preset`'s attack section (a run keeps its own): passed on as an override.
    """
    from qmu_core.attacks.subjects import DEFAULT_ROOT, resolve_many, split_sources

    attack = preset(args.preset).attack
    subject = resolve_many(split_sources(args.source), root=DEFAULT_ROOT, attack=attack)
    overrides = [f"attack={attack.model_dump_json()}"] if subject.attack_given else []
    overrides += args.set or []
    config = apply_overrides(subject.config, overrides)
    check_artifact_root(config.run.artifact_root)
    from flows.audit import qmu_audit

    return _flow(args, config, qmu_audit, args.source, tuple(overrides), DEFAULT_ROOT)


def _flow(args: argparse.Namespace, config: QMUConfig, flow: Any, *params: Any) -> int:
    """Run `flow(*params)` against a Prefect API; print the summary path it returns."""
    _ACTIVE_ROOTS.append(local_dir(config.run.artifact_root))  # a URL root's temporary files are in its mirror
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

    from flows import runner
    from flows.server import prefect_api
    from qmu_core import workers

    causes = _FirstErrors()
    # Inside a flow run Prefect's SIGTERM handler replaces `_terminate`; the runner chains in front
    # of it and calls this, so SIGTERM arms the same exit fallback as Ctrl-C (`_interrupt`).
    hook = functools.partial(_arm_fallback, 143)
    runner.on_sigterm.append(hook)
    try:
        with (
            prefect_api(),
            temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: bool(args.refresh)}),
            _console_without_known_errors(causes, debug=args.debug),
        ):
            try:
                summary = flow(*params)
            except Exception as exc:
                cause = _real_cause(exc, causes)
                if cause is exc:
                    raise
                if any(e is cause for e in _chain(exc)):
                    raise cause from None  # its own traceback; not the wrapper's
                raise cause from exc
    finally:
        runner.on_sigterm.remove(hook)
        workers.shutdown()  # nothing left running when the summary path is printed
    _say_where(summary)
    print(summary)
    return 0


def _say_where(summary: str) -> None:
    """One stderr line: the run folder (its index.html shows the reports in a browser) and, when
    the run used a temporary API server, how to keep runs browsable in the Prefect UI."""
    from prefect.settings import PREFECT_API_URL

    folder = summary.rsplit("/", 1)[0]
    index = f"{folder}/index.html"
    shown = index if is_url(index) or Path(index).is_file() else folder
    keep = "; to keep runs in the Prefect UI: `make ui`, then PREFECT_API_URL=http://127.0.0.1:4200/api"
    ui = "" if PREFECT_API_URL.value() else keep
    print(f"qmu: run folder {folder} (open {shown} in a browser){ui}", file=sys.stderr)


class DiskFullError(QMUError):
    """The disk holding the artifact root is full (ENOSPC while a stage wrote under it)."""


_PREFECT_WRAPPERS = ("UnfinishedRun", "FailedRun", "CrashedRun", "UpstreamTaskError")
"""What Prefect raises in a flow for a stage that failed elsewhere: never the cause itself."""

_FIXES = {
    "DefaultCredentialsError": (
        "Google credentials: point GOOGLE_APPLICATION_CREDENTIALS at a readable service-account key file, "
        "or run `gcloud auth application-default login`."
    ),
}
"""A fix to print beside root errors that are no QMUError, by their class name."""


class _FirstErrors(logging.Filter):
    """Remembers the exceptions the flow run's stages logged (Prefect logs every task failure
    with its exception) and, on the terminal only and unless `debug`, drops them and the lines
    that repeat them: `main` prints the cause once. The Prefect UI and API logs keep everything."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []
        self.heads: list[str] = []
        self.quiet = True

    def filter(self, record: logging.LogRecord) -> bool:
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


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _real_cause(exc: Exception, causes: _FirstErrors) -> BaseException:
    """What to report for `exc`, which the flow raised: a QMU error in its chain, else (for
    Prefect's wrappers) the first error the stages raised, else `exc`; a full disk under the
    artifact root becomes a `DiskFullError` that names the root."""
    cause: BaseException = exc
    qmu = next((e for e in _chain(exc) if isinstance(e, QMUError)), None)
    if qmu is not None:
        cause = qmu
    elif any(_is_wrapper(e) for e in _chain(exc)):
        cause = causes.first() or exc
    full = next((e for e in _chain(cause) if isinstance(e, OSError) and e.errno == errno.ENOSPC), None)
    if full is not None:
        root = _ACTIVE_ROOTS[-1] if _ACTIVE_ROOTS else None
        where = f"the artifact root {root}" if root is not None else "the artifact root"
        cause = DiskFullError(
            f"The disk holding {where} is full ({full.strerror}"
            + (f", writing {full.filename}" if full.filename else "")
            + "). Free space on it (`qmu artifacts gc --root ROOT` removes what no run needs), or set "
            "run.artifact_root to a directory on another disk."
        )
    return cause


@contextlib.contextmanager
def _console_without_known_errors(causes: _FirstErrors, *, debug: bool) -> Iterator[None]:
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


def _artifacts(args: argparse.Namespace) -> int:
    """`qmu artifacts ls|gc`."""
    from qmu_core import housekeeping

    root = args.root if is_url(args.root) else Path(args.root)
    if is_url(root):
        print(f"qmu: {root} is a URL root: only this machine's mirror {local_dir(root)} is looked at", file=sys.stderr)
    if args.what == "ls":
        print(housekeeping.listing(root), end="")
        return 0
    removed = housekeeping.collect_garbage(root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    print(f"qmu: {verb} {len(removed)} file(s) under {root}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- interrupts

_ACTIVE_ROOTS: list[Path] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


FALLBACK_S = 5.0
"""Seconds after Ctrl-C / SIGTERM before the process exits even if the exception the signal raised
was swallowed on its way up (a library catching BaseException in the main thread: seen once in
~10 interrupted runs, the run then went on to the end)."""

_STOPPING = threading.Event()
_SIGNALLED: list[int] = []
"""The exit code of every stop signal this process got (`_arm_fallback`)."""


def _arm_fallback(code: int) -> None:
    """Exit with `code` in `FALLBACK_S` unless the stop got through by then; stop the training
    workers and every later stage now (`qmu_core.workers.cancel`, in a thread: a signal handler
    may have interrupted the main thread inside the workers' lock)."""
    _SIGNALLED.append(code)
    workers = sys.modules.get("qmu_core.workers")
    if workers is not None:
        threading.Thread(target=workers.cancel, daemon=True, name="qmu-stop-workers").start()

    def fire() -> None:
        if not _STOPPING.is_set():
            _stop(code)

    timer = threading.Timer(FALLBACK_S, fire)
    timer.daemon = True
    timer.start()


def _terminate(_signum: int, _frame: object) -> None:
    _arm_fallback(143)
    raise Terminated


def _interrupt(_signum: int, _frame: object) -> None:
    _arm_fallback(130)
    raise KeyboardInterrupt


def _say_stopped(code: int) -> None:
    """Remove this process's partial files and print the one line."""
    _STOPPING.set()
    from qmu_core.housekeeping import remove_own_temp_files

    for root in _ACTIVE_ROOTS:
        remove_own_temp_files(root)
    print(f"qmu: {'terminated' if code == 143 else 'interrupted'}; finished stages are kept and reused next time",
          file=sys.stderr)  # fmt: skip


def _stop(code: int) -> None:
    """`_say_stopped`, then exit at once: busy training threads cannot be stopped."""
    _say_stopped(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Stop: one line, no partial files of this process, and no waiting for busy worker threads."""
    code = 143 if isinstance(exc, Terminated) else 130
    if threading.active_count() > 1:  # other threads (training, the fallback timer): end here
        _stop(code)
    _say_stopped(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
