"""`qmu hardware`, `qmu shots` and `qmu leak-map`: the run's models measured through a sampler with finite shots."""

from __future__ import annotations

import argparse
from typing import Any

from qmu_cli.flow_run import run_flow, start_early
from qmu_cli.options import add_config_args, add_refresh_arg, config_of
from qmu_core.config import check_artifact_root

__all__ = ["hardware", "register"]


def register(sub: Any) -> None:
    """Add ``hardware``, ``shots`` and ``leak-map`` to the `qmu` subcommands `sub`."""
    hw = sub.add_parser(
        "hardware",
        help="Measure the run's models (before, unlearned, oracle) through hardware.sampler with finite shots.",
    )
    shots = sub.add_parser("shots", help="Shot-count study: the audit against the shots per record (hardware.shots).")
    for p in (hw, shots):
        add_config_args(p)
        add_refresh_arg(p)
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what the run would measure and send (circuits, shots, jobs, two-qubit gates, estimated device "
            "time; for google_engine the processor, run name and batches) without training, sampling or sending.",
        )
        p.set_defaults(handler=hardware)
    leak = sub.add_parser(
        "leak-map",
        help="Leakage map: the audit at every noise setting (hardware.noise_map) x shot count (hardware.shots), "
        "as a heat map and a table, and where the leak disappears.",
    )
    add_config_args(leak)
    add_refresh_arg(leak)
    leak.add_argument(
        "--dry-run",
        action="store_true",
        help="Print, per noise setting, the circuits to emulate and an emulator time estimated on one circuit, "
        "without training or measuring.",
    )
    leak.set_defaults(handler=hardware)


def hardware(args: argparse.Namespace) -> int:
    """`qmu hardware` / `qmu shots` / `qmu leak-map`: the run's models measured through a sampler."""
    config = config_of(args)
    check_artifact_root(config.run.artifact_root)
    from qmu_core.hardware.evaluate import check_model

    check_model(config.model)
    if args.dry_run:
        from qmu_core.hardware.dryrun import leak_map_lines, plan

        lines = (
            leak_map_lines(config)
            if args.command == "leak-map"
            else plan(config, study=args.command == "shots").lines()
        )
        print("\n".join(lines))
        return 0
    start_early()  # the temporary Prefect server boots while the flow imports
    from flows.hardware import qmu_hardware, qmu_leak_map, qmu_shots

    flow = {"hardware": qmu_hardware, "shots": qmu_shots, "leak-map": qmu_leak_map}[args.command]
    return run_flow(args, config, flow, config)
