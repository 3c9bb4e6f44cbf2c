"""`qmu reproduce`: the paper's study end to end, and REPRODUCTION.md (flows/reproduce.py)."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from qmu_cli.flow_run import run_flow, start_early
from qmu_cli.options import add_refresh_arg
from qmu_core.config import ReproduceConfig, check_artifact_root, preset
from qmu_core.errors import ConfigError

__all__ = ["register", "reproduce"]


def _list(text: str) -> list[str]:
    return [] if text.strip().lower() in ("", "none") else [t.strip() for t in text.split(",") if t.strip()]


def register(sub: Any) -> None:
    """Add ``reproduce`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser(
        "reproduce",
        help="The paper's study end to end (paper, paper_hqnn, the device, the shots) and REPRODUCTION.md.",
    )
    defaults = ReproduceConfig()
    p.add_argument("--seeds", type=int, default=defaults.seeds, help="Training seeds per model (default %(default)s).")
    p.add_argument("--mnist", dest="mnist_path", help="Directory of the MNIST files, e.g. ../shared/data/mnist.")
    p.add_argument("--artifact-root", default=defaults.artifact_root, help="Artifact root (default %(default)s).")
    p.add_argument("--models", help="Comma-separated models (default paper,paper_hqnn).")
    p.add_argument("--processors", help="Comma-separated device noise (default willow_pink,weber); none: no device.")
    p.add_argument("--shots", help="Comma-separated shot counts of the shot study (default 10,100,1000,10000).")
    p.add_argument("--publish-to", default="", help="Also write REPRODUCTION.md and its data here (docs/reproduction).")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="Applied to every run of the study (e.g. attack.n_shadow=16). Repeatable.",
    )
    add_refresh_arg(p)
    p.set_defaults(handler=reproduce)


def config_of(args: argparse.Namespace) -> ReproduceConfig:
    """The study's `ReproduceConfig` from the command line; a `ConfigError` names a bad option."""
    raw: dict[str, Any] = {
        "seeds": args.seeds,
        "mnist_path": args.mnist_path,
        "artifact_root": args.artifact_root,
        "publish_to": args.publish_to,
        "overrides": tuple(args.overrides),
    }
    if args.models is not None:
        raw["models"] = tuple(_list(args.models))
    if args.processors is not None:
        raw["processors"] = tuple(_list(args.processors))
    if args.shots is not None:
        try:
            raw["shots"] = tuple(int(s) for s in _list(args.shots))
        except ValueError:
            raise ConfigError(
                f"--shots {args.shots!r}: write whole numbers separated by commas, e.g. 10,100,1000."
            ) from None
    try:
        return ReproduceConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"qmu reproduce: {problems}. See `qmu reproduce --help`.") from None


def reproduce(args: argparse.Namespace) -> int:
    """`qmu reproduce`: every study run, then REPRODUCTION.md; prints its path last."""
    config = config_of(args)
    check_artifact_root(config.artifact_root)
    from qmu_core.reproduction import studies

    planned = studies(config)  # every run's config is checked before anything trains
    start_early()  # the temporary Prefect server boots while the flow imports
    from flows.reproduce import qmu_reproduce

    root = preset("tiny", run={"artifact_root": config.artifact_root})  # where run_flow looks for temporary files
    print(f"qmu: reproduce: {len(planned)} runs: {', '.join(s.key for s in planned)}", flush=True)
    return run_flow(args, root, qmu_reproduce, config)
