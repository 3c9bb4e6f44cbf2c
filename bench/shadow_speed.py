"""Cost of the reference (shadow) models against one target training, on this machine.

    python bench/shadow_speed.py                       # the default preset, 8 reference models
    python bench/shadow_speed.py --preset paper --set attack.reference=disjoint --n-shadow 8

Measures, in this order and with nothing cached (a fresh temporary artifact root):

1. ``target_s``: one target training, in this process (what a single model costs);
2. ``references_s``: `n_shadow` reference models through `qmu_core.workers` (one process per
   core, as the pipeline trains them), wall time from the first submit to the last result,
   including the workers' start-up (importing TensorFlow);
3. ``ratio = references_s / target_s`` (the issue's target: about 4 or less for 8 models on
   2 cores), and ``references_sequential_estimate_s``: the sum of the per-model training times
   the workers report, i.e. what one process would have needed.

Reference models train as the pipeline trains them: concurrent requests share model-batched
worker jobs (`qmu_core.grouping`); ``--per-model`` runs one worker job per model instead.
``--compare`` measures the old and the new path in one run, each in its own process: TFQ's
Adjoint (``QMU_NATIVE=0``) with one job per model (the path before issue 28) and
``--old-n-shadow`` reference models (default 8), then the native op (`qmu_core.qnn.native`)
with grouped jobs and ``--n-shadow``.
It adds ``per_model_speedup``: old seconds per reference model over new.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path

environment.apply()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--n-shadow", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="Worker processes (0: one per core).")
    parser.add_argument("--per-model", action="store_true", help="One worker job per model (no grouping).")
    parser.add_argument("--compare", action="store_true", help="Old route (TFQ Adjoint) and new, one run.")
    parser.add_argument("--old-n-shadow", type=int, default=8, help="Reference models on the old route.")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return

    from qmu_core import artifacts, jobs, workers
    from qmu_core.config import preset
    from qmu_core.config.overrides import apply_overrides
    from qmu_core.grouping import GROUPS
    from qmu_core.membership import reference_names
    from qmu_core.splits import read_splits, split_roles

    cfg = apply_overrides(preset(args.preset), [*args.set, f"attack.n_shadow={args.n_shadow}"])
    with tempfile.TemporaryDirectory() as tmp:
        out = split_roles(cfg.data, cfg.model.feature_spec, seed=cfg.run.seed)
        ref = artifacts.plan("splits", {"bench": 1}, root=Path(tmp))
        artifacts.write_output(out, ref, {})
        table = read_splits(ref)

        t0 = time.perf_counter()
        target = jobs.train(table, cfg.model, cfg.train, cfg.data.classes, which="target", seed=cfg.run.seed)
        target_s = time.perf_counter() - t0

        workers.configure(args.workers)
        names = reference_names(cfg.attack)

        def one(name: str) -> float:
            start = time.perf_counter()
            if args.per_model:  # one worker job per model (the path before qmu_core.grouping)
                workers.run(
                    jobs.train_split, ref, cfg.model, cfg.train, cfg.data.classes, which=name, seed=cfg.run.seed
                )
            else:  # as the pipeline's reference stages do
                GROUPS.train(ref, cfg.model, cfg.train, cfg.data.classes, which=name, group=names, seed=cfg.run.seed)
            return time.perf_counter() - start

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max(1, len(names))) as pool:
            per_model = list(pool.map(one, names))
        references_s = time.perf_counter() - t0
        workers.shutdown()
    from qmu_core.qnn import native

    print(
        json.dumps(
            {
                "route": "TFQ Adjoint" if native.load() is None else "native op",
                "jobs": "one per model" if args.per_model else "grouped (qmu_core.grouping)",
                "preset": args.preset,
                "overrides": args.set,
                "n_shadow": len(names),
                "reference": cfg.attack.reference,
                "workers": workers.n_workers(args.workers),
                "cpus": os.cpu_count(),
                "target_records": target.facts.n_train if target.facts else None,
                "target_s": round(target_s, 2),
                "references_s": round(references_s, 2),
                "ratio": round(references_s / target_s, 2),
                "per_model_wall_s": [round(s, 2) for s in per_model],
            }
        )
    )


def compare(args: argparse.Namespace) -> None:
    """Both routes, each in a child process of this script; one JSON object with both."""
    common = ["--preset", args.preset, "--workers", str(args.workers), *(f"--set={x}" for x in args.set)]
    results = {}
    for route, n_shadow, env in [
        ("old", args.old_n_shadow, {"QMU_NATIVE": "0"}),
        ("new", args.n_shadow, {"QMU_NATIVE": "1"}),
    ]:
        cmd = [
            sys.executable,
            __file__,
            *common,
            "--n-shadow",
            str(n_shadow),
            *(["--per-model"] if route == "old" else []),
        ]
        done = subprocess.run(cmd, env=environment.child_env(**env), capture_output=True, text=True, check=True)
        results[route] = json.loads(done.stdout.strip().splitlines()[-1])
    old, new = results["old"], results["new"]
    per_old = old["references_s"] / old["n_shadow"]
    per_new = new["references_s"] / new["n_shadow"]
    results["per_model_speedup"] = round(per_old / per_new, 2)
    results["new_all_within_old_wall"] = new["references_s"] <= old["references_s"]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
