"""`qmu audit`: membership-audit a run's models or model artifacts, reusing the cached references."""

from __future__ import annotations

import argparse
from typing import Any

from qmu_cli.flow_run import run_flow, start_early
from qmu_cli.options import add_members, add_refresh_arg, config_of
from qmu_core.config import PRESETS, check_artifact_root, preset
from qmu_core.config.overrides import apply_overrides
from qmu_core.errors import ConfigError

__all__ = ["audit", "register"]


def register(sub: Any) -> None:
    """Add ``audit`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser(
        "audit",
        help="Membership-audit a run's models or one model artifact, reusing the cached reference models.",
    )
    p.add_argument(
        "source",
        nargs="?",
        default="",
        help="A run directory, its summary.json, or a model .parquet (trained or unlearned). Not with --weights.",
    )
    p.add_argument(
        "--weights",
        help=(
            "A model trained outside QMU: its weights (.npz or .parquet, one entry per circuit symbol plus head_w "
            "and head_b). Its architecture and training recipe are --preset's model and train sections (change "
            "them with --set); --members lists its training records."
        ),
    )
    p.add_argument(
        "--members",
        help=(
            "With --weights: the file of sample_ids the model trained on (.txt one per line, .csv, .parquet, "
            ".npy, .npz)."
        ),
    )
    p.add_argument(
        "--recipe-seeds",
        type=int,
        default=3,
        choices=range(1, 17),
        metavar="K",
        help="With --weights: QMU trains the model itself K times with the recipe for the recipe check (default 3).",
    )
    p.add_argument("--config", help="With --weights: a JSON file {section: {field: value}} applied after the preset.")
    p.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help=(
            "For a model artifact: the preset whose `attack` section to use (a run keeps its own). With --weights: "
            "the whole config (architecture, recipe, data, attacks)."
        ),
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="Override a field of the recovered config, e.g. attack.threat_model=labels; repeatable.",
    )
    add_refresh_arg(p)
    p.set_defaults(handler=audit)


def audit(args: argparse.Namespace) -> int:
    """`qmu audit`: recover the config and models from a run or from model artifacts, audit them.

    The run: its name under data/artifacts, its folder or summary.json; model artifacts: several
    separated by commas. Checked here before Prefect starts; the flow resolves the same source again. A
    model artifact takes `--preset`'s attack section (a run keeps its own): passed on as an override.
    """
    if args.weights or args.members:
        return _external(args)
    if args.config:
        raise ConfigError("--config applies with --weights only; a run or a model artifact keeps its own config.")
    from qmu_core.attacks.subjects import DEFAULT_ROOT, resolve_many, split_sources

    attack = preset(args.preset).attack
    subject = resolve_many(split_sources(args.source), root=DEFAULT_ROOT, attack=attack)
    overrides = [f"attack={attack.model_dump_json()}"] if subject.attack_given else []
    overrides += args.set or []
    config = apply_overrides(subject.config, overrides)
    check_artifact_root(config.run.artifact_root)
    start_early()  # the temporary Prefect server boots while the flow imports
    from flows.audit import qmu_audit

    return run_flow(args, config, qmu_audit, args.source, tuple(overrides), DEFAULT_ROOT)


def _external(args: argparse.Namespace) -> int:
    """`qmu audit --weights W --members M`: a model trained outside QMU (flows/external.py)."""
    if args.source:
        raise ConfigError(
            f"Give either a source to audit ({args.source!r}) or --weights for a model trained elsewhere, not both."
        )
    if not args.weights or not args.members:
        missing = "--members (the file of its training records' sample_ids)" if args.weights else "--weights"
        raise ConfigError(f"A model trained elsewhere needs both --weights and --members; {missing} is missing.")
    add_members(args, args.members)
    args.command = "run"  # config_of checks the artifact root as for a run
    config = config_of(args)
    from qmu_core.external import check_external

    check_external(config, args.weights)  # before Prefect starts
    start_early()
    from flows.external import qmu_audit_external

    return run_flow(args, config, qmu_audit_external, config, args.weights, args.recipe_seeds)
