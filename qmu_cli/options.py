"""The config a command works on: ``--preset``, ``--config`` and ``--set``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qmu_core.config import PRESETS, QMUConfig, check_artifact_root, preset
from qmu_core.config.overrides import apply_overrides, load_config_file, merge_sections
from qmu_core.membership import shadow_warnings

__all__ = ["add_config_args", "add_members", "add_refresh_arg", "config_of"]


def config_of(args: argparse.Namespace) -> QMUConfig:
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


def add_members(args: argparse.Namespace, members: str) -> None:
    """Put ``data.members`` and ``data.n_target_train`` (the list's length) before `args`' own ``--set`` s.

    So `config_of` reads a model trained elsewhere's records (`qmu audit --weights`, `qmu split`).
    """
    from qmu_core.members import read_member_ids

    n = len(read_member_ids(members))
    args.set = [f"data.members={members}", f"data.n_target_train={n}", *(args.set or [])]


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--preset``, ``--config`` and ``--set`` (`config_of` reads them)."""
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


def add_refresh_arg(p: argparse.ArgumentParser) -> None:
    """``--refresh`` of the commands that run a flow."""
    p.add_argument("--refresh", action="store_true", help="Recompute every stage, ignoring the cache.")
