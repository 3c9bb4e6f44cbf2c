"""`qmu split`: the records and model inputs of a split, for training a model outside QMU."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qmu_cli.options import add_config_args, add_members, config_of
from qmu_core.errors import ConfigError

__all__ = ["register", "split"]


def register(sub: Any) -> None:
    """Add ``split`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser(
        "split",
        help=(
            "Write the split (sample_id, label, role, x: the model's inputs) of a config to a Parquet file: what a "
            "model trained outside QMU trains on (rows with role target_train), before `qmu audit --weights`."
        ),
    )
    add_config_args(p)
    p.add_argument("--members", help="The file of sample_ids your model trains on (as `qmu audit --members`).")
    p.add_argument("--out", required=True, help="The Parquet file to write.")
    p.set_defaults(handler=split)


def split(args: argparse.Namespace) -> int:
    """`qmu split`: the split the config (and --members) makes, as `qmu audit --weights` will make it again."""
    out = Path(args.out)
    if out.suffix != ".parquet":
        raise ConfigError(f"--out {args.out}: write the split to a .parquet file.")
    if args.members:
        add_members(args, args.members)
    config = config_of(args)
    from qmu_core.splits import split_roles

    frame = split_roles(config.data, config.model.feature_spec, seed=config.run.seed).frame
    out.parent.mkdir(parents=True, exist_ok=True)
    frame[["sample_id", "label", "role", "x"]].to_parquet(out)
    counts = frame["role"].value_counts().to_dict()
    print(f"qmu: wrote {len(frame)} records ({counts}) to {out}", file=sys.stderr)
    return 0
