"""How far one model drifts between CPU instruction sets: the target and each unlearned model (issue 29).

    python bench/isa_divergence.py                      # default preset, SSE41 against the machine's own
    python bench/isa_divergence.py --preset tiny --isa AVX2

Trains the preset's target (repeat 0) and runs every unlearning method on it, in one process per
instruction set (``ONEDNN_MAX_CPU_ISA``; ``native``: unset), without the cache or Prefect. Prints,
per model, how far the class probabilities of every split record are apart between the two
(largest and mean absolute difference) and the share of records whose predicted class agrees,
then one JSON line. A model whose drift is far above the target's amplifies float rounding: its
numbers, and the verdicts built on them, depend on the CPU (docs/methods.md#reproducibility).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path


def models(preset_name: str, out: Path) -> None:
    """In this process: train the target, run every method, save each model's probabilities to `out`."""
    from qmu_core import jobs
    from qmu_core.config import preset
    from qmu_core.qnn import training
    from qmu_core.splits import SplitTable, split_roles

    cfg = preset(preset_name)
    split = split_roles(cfg.data, cfg.model.feature_spec, seed=cfg.run.seed)
    table = SplitTable(split.frame, split.facts)
    classes = cfg.data.classes
    target = jobs.train(table, cfg.model, cfg.train, classes, which="target", seed=cfg.run.seed).frame
    weights = {"before": target}
    for m in cfg.unlearn.methods:
        unlearned = jobs.unlearn(target, table, cfg.model, classes, cfg.unlearn.for_stage(m), cfg.train, method=m,
                                 seed=cfg.run.seed)  # fmt: skip
        weights[m] = unlearned.frame
    inputs = training.model_inputs(table.frame, cfg.model)
    probs = {k: jobs.load_model(w, table, cfg.model, classes).predict_probs(inputs).numpy() for k, w in weights.items()}
    np.savez(out, **probs)


def main() -> int:
    """Run `models` under each instruction set and compare."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--isa", default="SSE41", help="ONEDNN_MAX_CPU_ISA to compare with the machine's own.")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        models(args.preset, Path(args.child))
        return 0
    walls, found = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for isa in (args.isa, "native"):
            env = environment.child_env()
            env.pop("ONEDNN_MAX_CPU_ISA", None)
            if isa != "native":
                env["ONEDNN_MAX_CPU_ISA"] = isa
            out = Path(tmp) / f"{isa}.npz"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--preset", args.preset, "--child", str(out)], env=env,
                           check=True, cwd=ROOT)  # fmt: skip
            walls[isa] = round(time.perf_counter() - t0, 1)
            with np.load(out) as f:
                found[isa] = {k: f[k] for k in f.files}
    a, b = found[args.isa], found["native"]
    print(f"| model | max abs diff | mean abs diff | same predicted class ({args.isa} vs native) |")
    print("|---|---:|---:|---:|")
    rows = {}
    for name in a:
        d = np.abs(a[name] - b[name])
        agree = float(np.mean(a[name].argmax(1) == b[name].argmax(1)))
        rows[name] = {"max": float(d.max()), "mean": float(d.mean()), "agree": agree}
        print(f"| {name} | {d.max():.3g} | {d.mean():.3g} | {agree:.4f} |")
    print(json.dumps({"preset": args.preset, "isa": args.isa, "wall_s": walls, "models": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
