"""Whether one study reaches the same verdicts under three CPU instruction sets (issue 29 item 5).

    python bench/cpu_agreement.py                                # default preset
    python bench/cpu_agreement.py --preset tiny --set unlearn.seeds=2
    python bench/cpu_agreement.py --isa SSE41 --isa AVX2 --isa native

oneDNN picks TensorFlow's float32 kernels by instruction set; ``ONEDNN_MAX_CPU_ISA`` caps it, so
one machine stands in for three CPUs (``native``: the variable unset, the machine's own best).
Each run is a cold `qmu run` into an artifact root of its own (nothing is shared between them).
Prints the conclusions side by side (`qmu_core.report.agreement`), then one JSON line with the
wall times, and exits 1 when a conclusion differs or an interval does not overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path
from qmu_core.report.agreement import agreement  # noqa: E402


def run_under(isa: str, preset: str, sets: list[str], root: Path) -> tuple[dict, float]:
    """One cold `qmu run` with oneDNN capped at `isa` (``native``: uncapped); its summary and wall time."""
    env = environment.child_env()
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa != "native":
        env = environment.child_env(ONEDNN_MAX_CPU_ISA=isa)
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", preset, "--set", f"run.artifact_root={root}"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"qmu run under {isa} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    path = Path(done.stdout.strip().splitlines()[-1])
    return json.loads(path.read_text()), wall


def main() -> int:
    """Run the study under each ISA and compare."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default")
    p.add_argument("--set", action="append", default=[], dest="sets", help="A `qmu run --set` override.")
    p.add_argument("--isa", action="append", help="ONEDNN_MAX_CPU_ISA values (default: SSE41, AVX2, native).")
    p.add_argument("--keep", help="Write the artifact roots under this folder instead of a temporary one.")
    args = p.parse_args()
    isas = args.isa or ["SSE41", "AVX2", "native"]
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="qmu-cpu-agreement-"))
    summaries, walls = {}, {}
    for isa in isas:
        print(f"{isa}: running {args.preset} {' '.join(args.sets)} ...", file=sys.stderr, flush=True)
        summaries[isa], walls[isa] = run_under(isa, args.preset, args.sets, base / isa)
    result = agreement(summaries)
    print(result.markdown())
    print(
        json.dumps(
            {
                "preset": args.preset,
                "sets": args.sets,
                "isas": isas,
                "wall_s": {k: round(v, 1) for k, v in walls.items()},
                "conclusions": len(result.table),
                "differ": result.differ,
                "apart": result.apart,
                "agrees": result.agrees,
                "roots": str(base),
                "cpu": os.uname().machine,
            }
        )
    )
    return 0 if result.agrees else 1


if __name__ == "__main__":
    sys.exit(main())
