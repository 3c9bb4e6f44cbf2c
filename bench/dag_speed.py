"""Wall time of `qmu_pipeline` with the concurrent DAG against one stage and one process at a time.

    python bench/dag_speed.py --preset tiny
    python bench/dag_speed.py --preset default,paper --repeats 2 --json dag.json

Modes: ``concurrent`` is the flow as shipped (its task runner, ``run.workers`` of the preset);
``sequential`` is ``qmu_pipeline.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))``
with ``run.workers=1``. Every measurement runs in a fresh subprocess (no worker pool, TensorFlow
state or server carried over) on a fresh, empty artifact root (nothing cached), against its own
temporary Prefect API (`qmu_prefect.server.prefect_api`); ``wall`` is the flow call alone.

Per stage, from the flow run's task runs (task name; ``train_model`` also split by the model it
trains, told by its ``train <which>: epoch`` log lines): ``span`` = first start to last end,
``sum`` = summed task run durations, ``start_s`` (JSON) = its first start after the first task's.
Both include time queued for a worker process: in concurrent mode the reference models start
beside the target and oracle, so their span is not their training time alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from qmu_core import environment  # noqa: E402 - once the repository is on the path

environment.apply()

MODES = ("concurrent", "sequential")
WHICH = re.compile(r"^train (\S+): epoch ")
PAGE = 200


def _stage(name: str, which: str | None) -> str:
    """The stage a task run belongs to: its task name, and for training the kind of model."""
    if name != "train_model" or which is None:
        return name if name != "train_model" else "train_model[?]"
    return "train_model[references]" if which.startswith(("ref-", "shadow-")) else f"train_model[{which}]"


def _pages(read: Any) -> list[Any]:
    items: list[Any] = []
    while page := read(limit=PAGE, offset=len(items)):
        items += page
        if len(page) < PAGE:
            break
    return items


def _stage_times(flow_run_id: Any) -> dict[str, dict[str, float]]:
    """Span and summed duration per stage of one flow run, from the API's task runs."""
    from prefect import get_client
    from prefect.client.schemas import filters as f
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=30)
    runs_filter = f.FlowRunFilter(id=f.FlowRunFilterId(any_=[flow_run_id]))
    logs_filter = f.LogFilter(flow_run_id=f.LogFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60  # the server records task run states from events, a little later
        while True:
            runs = _pages(lambda **kw: client.read_task_runs(flow_run_filter=runs_filter, **kw))
            if all(r.end_time for r in runs) or time.monotonic() > deadline:
                break
            time.sleep(1)
        logs = _pages(lambda **kw: client.read_logs(log_filter=logs_filter, **kw))
    which = {str(log.task_run_id): m[1] for log in logs if log.task_run_id and (m := WHICH.match(log.message))}
    spans: dict[str, list[tuple[float, float]]] = {}
    t0 = min((r.start_time.timestamp() for r in runs if r.start_time), default=0.0)
    for r in runs:
        if r.start_time and r.end_time:
            task = r.name.rsplit("-", 1)[0]
            for name in {task, _stage(task, which.get(str(r.id)))}:  # train_model: all models, and by kind
                spans.setdefault(name, []).append((r.start_time.timestamp(), r.end_time.timestamp()))
    if unfinished := sum(1 for r in runs if not r.end_time):
        print(f"dag_speed: WARNING: {unfinished} task run(s) have no end time; left out", file=sys.stderr)
    first = {name: min(a for a, _ in s) for name, s in spans.items()}
    return {name: {"n": len(s), "start_s": first[name] - t0, "span_s": max(b for _, b in s) - first[name],
                   "sum_s": sum(b - a for a, b in s)} for name, s in spans.items()}  # fmt: skip


def child(preset_name: str, mode: str, root: str, mnist: str, out: str) -> None:
    """One measurement, in this (fresh) process; writes its result as JSON to `out`."""
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.pipeline import qmu_pipeline
    from qmu_core import workers
    from qmu_core.config import preset
    from qmu_prefect.server import prefect_api

    sequential = mode == "sequential"
    overrides: dict[str, Any] = {"run": {"artifact_root": root, **({"workers": 1} if sequential else {})}}
    if preset(preset_name).data.dataset == "mnist":
        overrides["data"] = {"mnist_path": mnist}
    config = preset(preset_name, **overrides)
    flow = qmu_pipeline.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1)) if sequential else qmu_pipeline
    try:
        with prefect_api():
            start = time.perf_counter()
            state = flow(config, return_state=True)
            wall = time.perf_counter() - start
            summary = state.result()  # raises if the run failed
            stages = _stage_times(state.state_details.flow_run_id)
    finally:
        workers.shutdown()
    n_workers = workers.n_workers(config.run.workers)
    result = {"wall_s": wall, "workers": n_workers, "summary": str(summary), "stages": stages}
    Path(out).write_text(json.dumps(result))


def _measure(preset_name: str, mode: str, mnist: str) -> dict[str, Any]:
    """`child` in a fresh subprocess on a fresh, empty artifact root (removed afterwards)."""
    scratch = Path(tempfile.mkdtemp(prefix="qmu-dag-speed-"))
    out = scratch / "result.json"
    try:
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", preset_name, mode, str(scratch / "root"), mnist, str(out)]
        code = subprocess.run(cmd, stdout=sys.stderr, check=False).returncode  # the run's log goes to stderr
        if code != 0 or not out.is_file():
            raise SystemExit(f"dag_speed: the {preset_name}/{mode} run failed (exit code {code}); see its log above.")
        return {"preset": preset_name, "mode": mode, "process_s": time.perf_counter() - start,
                **json.loads(out.read_text())}  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")  # fmt: skip
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu": cpu,
            "commit": commit + ("+dirty" if dirty else ""), "load_avg": os.getloadavg()}  # fmt: skip


def _median(results: list[dict[str, Any]], key: str, stage: str | None = None) -> float:
    values = [r["stages"][stage][key] for r in results if stage in r["stages"]] if stage else [r[key] for r in results]
    return statistics.median(values) if values else float("nan")


def _report(preset_name: str, results: list[dict[str, Any]], modes: list[str]) -> None:
    by = {m: [r for r in results if r["mode"] == m] for m in modes}
    both = set(modes) == set(MODES)

    def gain(key: str, stage: str | None = None) -> float:  # sequential / concurrent, medians
        return _median(by["sequential"], key, stage) / _median(by["concurrent"], key, stage) if both else 0.0

    line = "  ".join(f"{m} {_median(by[m], 'wall_s'):.1f} s (workers {by[m][0]['workers']})" for m in modes)
    refs = f"  speed-up {gain('wall_s'):.2f}x (reference models {gain('span_s', 'train_model[references]'):.2f}x)"
    print(f"\n{preset_name}: wall (median of {len(by[modes[0]])}) {line}{refs if both else ''}")
    names = sorted({s for r in results for s in r["stages"]}, key=lambda s: _median(results, "start_s", s))
    head = "".join(f"{m[:4] + ' span':>11}{m[:4] + ' sum':>10}" for m in modes)
    print(f"  {'stage':<28}{'n':>4}{head}" + ("  span speed-up" if both else ""))
    for name in names:
        n = results[0]["stages"].get(name, {}).get("n", 0)
        cells = "".join(f"{_median(by[m], 'span_s', name):>11.1f}{_median(by[m], 'sum_s', name):>10.1f}" for m in modes)
        print(f"  {name:<28}{n:>4}{cells}" + (f"{gain('span_s', name):>14.2f}x" if both else ""))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(*sys.argv[2:7])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", help="Preset(s): repeatable or a comma list (default: default).")
    parser.add_argument("--mode", default=",".join(MODES), help="concurrent, sequential or both (comma list).")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="data.mnist_path for MNIST presets.")
    parser.add_argument("--repeats", type=int, default=1, help="Measurements per preset and mode (>= 1).")
    parser.add_argument("--json", type=Path, help="Also write machine facts and every measurement here.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # like Ctrl-C: stop the run, remove its root
    from qmu_core.config import PRESETS

    presets = [p for item in args.preset or ["default"] for p in item.split(",") if p]
    modes = [m for m in args.mode.split(",") if m]
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give 1 or more measurements per preset and mode")
    for bad, known in ((set(presets) - set(PRESETS), PRESETS), (set(modes) - set(MODES), MODES)):
        if bad:
            parser.error(f"unknown {sorted(bad)}; choose from {', '.join(known)}")
    machine = _machine()
    print(f"machine: {machine['cores']} cores ({machine['usable_cores']} usable), {machine['cpu']}, "
          f"commit {machine['commit']}, load {' '.join(f'{x:.2f}' for x in machine['load_avg'])}")  # fmt: skip
    mnist = str(Path(args.mnist).resolve())
    results: list[dict[str, Any]] = []
    for name in presets:
        for repeat in range(args.repeats):
            for mode in modes:
                print(f"dag_speed: {name} {mode} #{repeat + 1}", file=sys.stderr, flush=True)
                results.append(_measure(name, mode, mnist) | {"repeat": repeat})
                print(f"  {name} {mode} #{repeat + 1}: {results[-1]['wall_s']:.1f} s", flush=True)
                if args.json:  # after every measurement: a long series that fails keeps what it measured
                    args.json.write_text(json.dumps({"machine": machine, "measurements": results}, indent=2))
        _report(name, [r for r in results if r["preset"] == name], modes)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: the run (a child) is stopped and its artifact root removed
        print("dag_speed: interrupted", file=sys.stderr)
        sys.exit(130)
