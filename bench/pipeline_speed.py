"""Whole pipelines as a user runs them: `qmu run --preset P`, cold and then warm, wall time and peak memory.

    python bench/pipeline_speed.py                                   # default, then paper (MNIST)
    python bench/pipeline_speed.py --presets tiny                    # a minute
    python bench/pipeline_speed.py --presets paper --mnist ../shared/data/mnist --set unlearn.seeds=1

For each preset, `qmu run` runs twice into a fresh temporary artifact root with its own temporary
Prefect server: ``cold`` (nothing cached) and ``warm`` (the same command again: every stage cached).
Measured per run:

- ``wall_s``: the process's wall time, from its start to its exit (imports and server start-up
  included, as a user waits for them);
- ``peak_rss_mb``: the largest total resident memory of the run's process tree (the flow process,
  its training workers and the temporary API server), sampled every 0.2 s with psutil;
- ``stage_s``: each stage's own time as its log line reports it (``computed in <s>``), summed by
  stage kind (model, outputs, mia_scores, ...), so the cost of training, attacks and unlearning
  shows apart. Stages run side by side (and model-batched jobs report their whole batch's time
  for each model), so a kind's sum can exceed the run's wall time: compare kinds, not with wall_s;
- ``stage_peak_rss_mb``: per stage kind, the largest peak memory of one stage's job in a worker
  process (the log line's ``worker peak RSS``: the worker's peak is reset when the job starts).
  Stages that run in the flow's own process (attacks, metrics, reports) share it, so they have
  no number of their own; their memory is inside ``peak_rss_mb``.

Prints one JSON object per run and writes ``bench/results/pipeline.json`` (``--json``): a list of
objects with the keys ``preset``, ``cache`` (``cold`` or ``warm``), ``wall_s``, ``peak_rss_mb``,
``commit``, ``cpu`` and ``date``, plus ``stage_s`` and ``settings``. Entries of other presets
already in that file are kept; a preset measured again replaces its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

from qmu_core import environment
from qmu_core.machine import describe

ROOT = Path(__file__).resolve().parents[1]
STAGE = re.compile(r"stage (\w+) \S+: computed in ([0-9.]+)s")
PEAK = re.compile(r"stage (\w+) \S+: computed in [0-9.]+s, wrote \S+; worker peak RSS ([0-9.]+) MB")


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def run_once(preset: str, root: Path, home: Path, settings: list[str]) -> dict[str, Any]:
    """One `qmu run --preset preset` into `root`: wall time, peak tree RSS, stage times, exit code."""
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", preset, "--set", f"run.artifact_root={root}"]
    cmd += [a for s in settings for a in ("--set", s)]
    env = environment.child_env(PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    log = home / "run.log"
    home.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, _tree_rss(watched))
            time.sleep(0.2)
    wall = time.perf_counter() - started
    text = log.read_text()
    stages: dict[str, float] = defaultdict(float)
    for kind, seconds in STAGE.findall(text):
        stages[kind] += float(seconds)
    entry = {"wall_s": round(wall, 1), "peak_rss_mb": round(peak / 2**20, 1), "exit_code": proc.returncode}
    entry["stage_s"] = {k: round(v, 1) for k, v in sorted(stages.items())}
    peaks: dict[str, float] = {}
    for kind, mb in PEAK.findall(text):
        peaks[kind] = max(peaks.get(kind, 0.0), float(mb))
    entry["stage_peak_rss_mb"] = dict(sorted(peaks.items()))
    if proc.returncode != 0:
        entry["error"] = text.strip().splitlines()[-20:]
    return entry


def main() -> int:
    """Measure each preset cold then warm; print and record the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="default,paper", help="Comma-separated presets (default %(default)s).")
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="MNIST directory.")
    parser.add_argument("--set", dest="settings", action="append", default=[], help="Extra `--set` for every run.")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    facts = describe()
    fresh: list[dict[str, Any]] = []
    for preset in [p for p in args.presets.split(",") if p]:
        settings = list(args.settings)
        if preset.startswith("paper"):
            settings.insert(0, f"data.mnist_path={args.mnist}")
        with tempfile.TemporaryDirectory(prefix=f"qmu-bench-{preset}-") as tmp:
            for cache in ("cold", "warm"):
                measured = run_once(preset, Path(tmp) / "root", Path(tmp) / f"home-{cache}", settings)
                entry = {"preset": preset, "cache": cache, **measured, "settings": settings}
                entry |= {k: facts[k] for k in ("commit", "cpu", "cores", "date")}
                print(json.dumps(entry), flush=True)
                fresh.append(entry)
    kept = []
    if args.json.is_file():
        measured_presets = {e["preset"] for e in fresh}
        kept = [e for e in json.loads(args.json.read_text()) if e.get("preset") not in measured_presets]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(kept + fresh, indent=2) + "\n")
    return 0 if all(e["exit_code"] == 0 for e in fresh) else 1


if __name__ == "__main__":
    sys.exit(main())
