"""`qmu export`: a trained model as Parquet weights, Cirq JSON circuits and a manifest."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qmu_core.config import UNLEARN_METHODS
from qmu_core.identity import lineup
from qmu_core.storage import is_url

__all__ = ["export", "register"]


def register(sub: Any) -> None:
    """Add ``export`` to the `qmu` subcommands `sub`."""
    p = sub.add_parser("export", help="Export a trained model as Parquet weights + Cirq JSON + manifest.")
    p.add_argument("source", help="A run directory, its summary.json, or a model .parquet file.")
    p.add_argument(
        "out_dir", help="Directory to write manifest.json, circuit.json, readout.json, ansatz.json, *.parquet."
    )
    p.add_argument(
        "--phase",
        default="before",
        choices=[which.phase for which in lineup(UNLEARN_METHODS)],
        help="Which model of a run to export (ignored for a .parquet).",
    )
    p.set_defaults(handler=export)


def export(args: argparse.Namespace) -> int:
    """`qmu export SOURCE OUT_DIR`: print the manifest's path."""
    from qmu_core.export import check_out_dir, export_model, resolve_model_ref

    out_dir = check_out_dir(Path(args.out_dir))  # before reading anything
    source = args.source if is_url(args.source) else Path(args.source)  # a URL keeps its `//`
    manifest = export_model(resolve_model_ref(source, phase=args.phase), out_dir)
    print(manifest)
    return 0
