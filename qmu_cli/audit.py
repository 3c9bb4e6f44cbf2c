"""`qmu audit`: membership-audit a run's models or model artifacts, reusing the cached references."""

from __future__ import annotations

import argparse
from typing import Any

from qmu_cli.flow_run import run_flow, start_early
from qmu_cli.options import add_refresh_arg
from qmu_core.config import PRESETS, check_artifact_root, preset
from qmu_core.config.overrides import apply_overrides

__all__ = ["audit", "register"]


def register(sub: Any) -> None:
    """Add ``audit`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser(
        "audit",
        help="Membership-audit a run's models or one model artifact, reusing the cached reference models.",
    )
    p.add_argument("source", help="A run directory, its summary.json, or a model .parquet (trained or unlearned).")
    p.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="For a model artifact: the preset whose `attack` section to use (a run keeps its own).",
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
