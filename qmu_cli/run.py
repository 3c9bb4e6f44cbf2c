"""`qmu run`: the pipeline as a local Prefect flow run."""

from __future__ import annotations

import argparse
from typing import Any

from qmu_cli.flow_run import run_flow, start_early
from qmu_cli.options import add_config_args, add_refresh_arg, config_of

__all__ = ["register", "run"]


def register(sub: Any) -> None:
    """Add ``run`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser("run", help="Run the pipeline as a local Prefect flow run.")
    add_config_args(p)
    add_refresh_arg(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """`qmu run`: validate, connect to (or start) the Prefect API, run the flow."""
    config = config_of(args)
    start_early()  # the temporary Prefect server boots while the flow imports
    from flows.pipeline import qmu_pipeline

    return run_flow(args, config, qmu_pipeline, config)
