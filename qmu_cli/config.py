"""`qmu config show | schema | reference`: the resolved config, its JSON schema, its reference."""

from __future__ import annotations

import argparse
import json
from typing import Any

from qmu_cli.options import add_config_args, config_of
from qmu_core.config import QMUConfig
from qmu_core.config.reference import reference_markdown

__all__ = ["config", "register"]


def register(sub: Any) -> None:
    """Add ``config`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser("config", help="Show the resolved config or its JSON schema.")
    p.add_argument("what", choices=["show", "schema", "reference"])
    add_config_args(p)
    p.set_defaults(handler=config)


def config(args: argparse.Namespace) -> int:
    """`qmu config ...`: print what `args.what` names."""
    if args.what == "schema":
        print(json.dumps(QMUConfig.model_json_schema(), indent=2))
    elif args.what == "reference":
        print(reference_markdown(), end="")
    else:
        print(config_of(args).model_dump_json(indent=2))
    return 0
