"""Run every benchmark under bench/ and write one JSON file per run under bench/results/.

    python bench/all.py                              # every benchmark at its own default sizes
    python bench/all.py --quick                      # smallest sensible sizes: a few minutes in all
    python bench/all.py --only train_speed,shadow_speed --out /tmp/results

Each benchmark runs in its own subprocess (its command is recorded), one after the other, so
their timings do not disturb each other. Their JSON output is collected: ``train_speed``,
``sampler_speed`` and ``interrupt_latency`` print one JSON object per line, ``shadow_speed``
one object, ``dag_speed`` writes its JSON to the file given by ``--json`` (a temporary file
here; its readable table goes to the log). A failing benchmark is recorded with its exit code
and the tail of its stderr and does not stop the others; the exit code is 1 if any failed.

The file ``<out>/<UTC date-time>-<short commit>.json`` holds the commit (and whether the work
tree was dirty), the CPU model, the usable cores, the date (UTC, ISO 8601), the Python and
package versions, the options, and per benchmark: ``command``, ``exit_code``, ``wall_s``,
``results`` (the parsed JSON objects) or ``stderr_tail``. Progress goes to stderr, one line
when a benchmark starts and one when it ends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qmu_core.machine import describe

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
STDERR_TAIL = 40

# Arguments per benchmark: full (the script's own defaults) and --quick (its smallest sensible sizes).
BENCHMARKS: dict[str, dict[str, list[str]]] = {
    "train_speed": {
        "full": [],
        "quick": ["--records", "128", "--epochs", "1"],
    },
    "train_speed_stacked": {  # bench/train_speed.py's model-batched path (SCRIPTS)
        "full": ["--stacked", "1,8,32,64"],
        "quick": ["--stacked", "1,2", "--stacked-epochs", "2"],
    },
    "shadow_speed": {  # the old path (8 models) and the new one (64) in one run
        "full": ["--compare", "--n-shadow", "64", "--old-n-shadow", "8"],
        "quick": ["--preset", "tiny", "--n-shadow", "2"],
    },
    "sampler_speed": {
        "full": [],
        "quick": ["--records", "50", "--qvm-records", "1", "--repetitions", "100"],
    },
    "dag_speed": {
        "full": [],
        "quick": ["--preset", "tiny", "--mode", "concurrent"],
    },
    "pipeline_speed": {  # writes bench/results/pipeline.json too
        "full": ["--presets", "default,paper"],
        "quick": ["--presets", "tiny"],
    },
    "scaling": {  # writes bench/results/scaling/<axis>.json and .png (--quick: a temporary folder)
        "full": [],
        "quick": ["--quick", "--epochs", "1"],
    },
    "interrupt_latency": {
        "full": [],
        "quick": ["--repeats", "1", "--signal", "SIGINT"],
    },
}

SCRIPTS = {"train_speed_stacked": "train_speed"}
"""Benchmarks that are another mode of a script: their script's name (default: their own)."""


def _json_lines(text: str) -> list[Any]:
    """Every line of `text` that parses as a JSON object (other lines are the scripts' logs)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def run_one(name: str, args: list[str]) -> dict[str, Any]:
    """Run benchmark `name` with `args` in a subprocess; its command, exit code, wall time and results."""
    with tempfile.TemporaryDirectory(prefix=f"qmu-bench-{name}-") as tmp:
        json_file = Path(tmp) / "out.json"
        extra = ["--json", str(json_file)] if name == "dag_speed" else []
        cmd = [sys.executable, str(BENCH / f"{SCRIPTS.get(name, name)}.py"), *args, *extra]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        results: list[Any] = _json_lines(proc.stdout)
        if name == "dag_speed" and json_file.is_file():
            results = [json.loads(json_file.read_text())]
    entry: dict[str, Any] = {
        "command": [Path(cmd[0]).name, str(Path(cmd[1]).relative_to(ROOT)), *args],
        "exit_code": proc.returncode,
        "wall_s": round(wall, 2),
        "results": results,
    }
    errors = [r for r in results if isinstance(r, dict) and "error" in r]
    if proc.returncode != 0 or not results or errors:
        entry["ok"] = False
        entry["stderr_tail"] = proc.stderr.strip().splitlines()[-STDERR_TAIL:]
        if not results:
            entry["stdout_tail"] = proc.stdout.strip().splitlines()[-STDERR_TAIL:]
    else:
        entry["ok"] = True
    return entry


def main() -> int:
    """Parse the options, run the chosen benchmarks one by one and write the run's JSON file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="Benchmark name(s): repeatable or a comma list.")
    parser.add_argument("--quick", action="store_true", help="Each benchmark at its smallest sensible sizes.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Directory of the result files.")
    args = parser.parse_args()
    chosen = [n for item in args.only or list(BENCHMARKS) for n in item.split(",") if n]
    if unknown := sorted(set(chosen) - set(BENCHMARKS)):
        parser.error(f"--only {','.join(unknown)}: no such benchmark; choose from {', '.join(BENCHMARKS)}")
    facts = describe()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"{stamp}-{facts['commit'][:8] or 'nogit'}.json"
    args.out.mkdir(parents=True, exist_ok=True)
    run: dict[str, Any] = {**facts, "quick": args.quick, "benchmarks": {}}
    for name in chosen:
        bench_args = BENCHMARKS[name]["quick" if args.quick else "full"]
        print(f"bench: {name} {' '.join(bench_args)} ...", file=sys.stderr, flush=True)
        entry = run_one(name, bench_args)
        run["benchmarks"][name] = entry
        status = "ok" if entry["ok"] else f"FAILED (exit code {entry['exit_code']})"
        print(f"bench: {name} {status} in {entry['wall_s']:.1f} s", file=sys.stderr, flush=True)
        out.write_text(json.dumps(run, indent=2) + "\n")  # after every benchmark: a partial run is kept
    out.write_text(json.dumps(run, indent=2) + "\n")
    print(f"bench: wrote {out}", file=sys.stderr, flush=True)
    return 0 if all(e["ok"] for e in run["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
