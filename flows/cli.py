"""`qmu` command line: run the pipeline locally, show the config.

    qmu run --preset tiny [--set section.field=value ...] [--config file.json] [--refresh]
    qmu config show [--preset NAME] [--set ...]
    qmu config schema | reference
    qmu export RUN_OR_MODEL DIR [--phase before|after_ga|oracle]

`qmu run` prints Prefect's progress and, as its last line of stdout, the path of summary.json.
Errors print one message and exit 2 (bad input, missing data) or 1 (anything unexpected);
`--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Before Prefect or TensorFlow are imported: no telemetry (it logs an ERROR offline), quiet TF.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from qmu_core.config import QMUConfig
from qmu_core.docs import reference_markdown
from qmu_core.errors import ConfigError, QMUError
from qmu_core.overrides import apply_overrides
from qmu_core.presets import PRESETS, preset


def _config(args: argparse.Namespace) -> QMUConfig:
    cfg = preset(args.preset)
    if getattr(args, "config", None):
        path = Path(args.config)
        try:
            raw = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"--config {path}: cannot read it as JSON ({exc}).") from exc
        if not isinstance(raw, dict) or not all(isinstance(sec, dict) for sec in raw.values()):
            raise ConfigError(f"--config {path}: expected a JSON object {{section: {{field: value}}}}.")
        items = [f"{s}.{k}={json.dumps(v)}" for s, sec in raw.items() for k, v in sec.items()]
        cfg = apply_overrides(cfg, items)
    return apply_overrides(cfg, args.set or [])


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="Start from this preset.")
    p.add_argument("--config", help="JSON file {section: {field: value}} applied after the preset.")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="Override one field (value parsed as JSON, else text); repeatable.",
    )


def _export(args: argparse.Namespace) -> int:
    from qmu_core.export import export_model, resolve_model_ref

    manifest = export_model(resolve_model_ref(Path(args.source), phase=args.phase), Path(args.out_dir))
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
        choices=["before", "after_ga", "oracle"],
        help="Which model of a run to export (ignored for a .parquet).",
    )
    cfg = sub.add_parser("config", help="Show the resolved config or its JSON schema.")
    cfg.add_argument("what", choices=["show", "schema", "reference"])
    _add_config_args(cfg)
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except QMUError as exc:
        if args.debug:
            raise
        print(f"qmu: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qmu: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"qmu: unexpected error: {type(exc).__name__}: {exc}\n(run `qmu --debug ...` for the traceback)",
            file=sys.stderr,
        )
        return 1


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
    config = _config(args)
    if args.refresh:
        os.environ["PREFECT_TASKS_REFRESH_CACHE"] = "true"
    from flows.pipeline import qmu_pipeline

    summary = qmu_pipeline(config)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
