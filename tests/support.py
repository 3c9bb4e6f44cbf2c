"""Test helpers: model cases, random inputs and Cirq-simulated reference outputs of a `QNN`."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import pytest

from qmu_core import plugins
from qmu_core.config import ModelConfig
from qmu_core.qnn import circuits

REPO = Path(__file__).resolve().parents[1]

ONE_WORKER = ("--set", "run.workers=1")
"""`qmu run` arguments for plumbing tests that do not test the training pool: one worker process
imports TensorFlow once instead of once per core (about 5 s of CPU per run on 2 cores)."""

__all__ = [
    "allocate_mb",
    "EXPORT_CASES",
    "EXPORT_PARAMS",
    "PLUGIN",
    "MODEL_CASES",
    "needs_plugin",
    "TinyRun",
    "case_id",
    "cirq_expectations",
    "random_inputs",
    "resolve",
    "task_states",
    "trained_model_artifact",
    "z_expectations",
]

# ModelConfig overrides (on top of 3 qubits, 2 layers) covering every kind/encoding combination.
MODEL_CASES: list[dict[str, Any]] = [
    {"encoding": "angle"},
    {"encoding": "angle", "reupload": True},
    {"encoding": "amplitude"},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 1},
    {"kind": "hqnn", "encoding": "angle", "layers": 1},
]


def resolve(circuit: cirq.Circuit, values: dict[str, float]) -> cirq.Circuit:
    """Bind symbol values (floats) into a concrete circuit."""
    return cirq.resolve_parameters(circuit, cirq.ParamResolver({k: float(v) for k, v in values.items()}))


def z_expectations(circuit: cirq.Circuit, n_qubits: int) -> np.ndarray:
    """Reference ⟨Z_i⟩ of a resolved circuit with `cirq.Simulator` (complex128, float64 result)."""
    qs = circuits.qubits(n_qubits)
    state = cirq.Simulator(dtype=np.complex128).simulate(circuit, qubit_order=qs).final_state_vector
    return (np.abs(state) ** 2) @ circuits.z_signs(n_qubits).astype(np.float64)


def random_inputs(cfg: ModelConfig, n: int, *, seed: int = 1, image_side: int = 8) -> np.ndarray:
    """Inputs of the right kind for `cfg`: pixels in [-1, 1], amplitudes or angles in [0, pi]."""
    rng = np.random.default_rng(seed)
    if cfg.kind == "hqnn":
        return rng.uniform(-1, 1, size=(n, image_side * image_side)).astype(np.float32)
    if cfg.encoding == "amplitude":
        return rng.normal(size=(n, 2**cfg.n_qubits)).astype(np.float32)
    return rng.uniform(0, np.pi, size=(n, cfg.n_qubits)).astype(np.float32)


def cirq_expectations(qnn: Any, x: np.ndarray) -> np.ndarray:
    """⟨Z_i⟩ of a `QNN` on inputs `x`, recomputed by resolving `qnn.circuit` and `cirq.Simulator`."""
    from qmu_core._tf import tf

    values = qnn.backend.symbol_values(qnn.front_end(tf.constant(x))).numpy()
    theta = qnn.variables["theta"].numpy()
    names = [str(s) for s in qnn.input_symbols] + [str(s) for s in qnn.weight_symbols]
    out = []
    for row in values:
        resolved = resolve(qnn.circuit, dict(zip(names, [*row, *theta], strict=True)))
        out.append(z_expectations(resolved, qnn.cfg.n_qubits))
    return np.array(out)


# ModelConfig cases of the export tests: every kind and encoding at a size Cirq simulates fast.
EXPORT_CASES: list[dict[str, Any]] = [
    {"n_qubits": 4, "layers": 2},
    {"n_qubits": 4, "layers": 2, "reupload": True},
    {"n_qubits": 4, "layers": 2, "encoding": "amplitude"},
    {"n_qubits": 4, "layers": 1, "kind": "hqnn", "encoding": "amplitude"},
    {"n_qubits": 3, "layers": 1, "kind": "hqnn", "encoding": "angle"},
]

PLUGIN = "reupload_ring"
"""The example model plug-in (examples/reupload_plugin), which `make` installs."""

needs_plugin = pytest.mark.skipif(
    PLUGIN not in plugins.installed(plugins.MODELS),
    reason="pip install -e examples/reupload_plugin --no-deps (the example model plug-in) first",
)

EXPORT_PARAMS: list[Any] = [
    *EXPORT_CASES,
    pytest.param({"kind": PLUGIN, "n_qubits": 3, "layers": 2}, marks=needs_plugin),
]
"""`EXPORT_CASES` and the example model plug-in (skipped when it is not installed)."""


def case_id(kw: dict[str, Any]) -> str:
    """A readable pytest id for a ModelConfig case."""
    return "-".join(f"{k}={v}" for k, v in kw.items())


def trained_model_artifact(root: Path, model: ModelConfig, *, epochs: int = 1) -> tuple[Any, Any, Any]:
    """The tiny preset's split and a target model trained for `epochs`, written by the real stages.

    Returns:
        ``(model_ref, splits_table, qnn)``; `qnn` is the model rebuilt from its artifact.
    """
    from qmu_core import artifacts, jobs
    from qmu_core.config import TrainConfig, preset
    from qmu_core.splits import read_splits
    from tasks import split_data, train_model

    data = preset("tiny").data
    splits = split_data.task.fn(data=data, features=model.feature_spec, seed=0, source="digits:test", root=root)
    train = TrainConfig(epochs=epochs, batch_size=16)
    ref = train_model.task.fn(splits=splits, model=model, train=train, classes=data.classes, which="target", seed=0)
    table = read_splits(splits)
    return ref, table, jobs.load_model(artifacts.read(ref), table, model, data.classes)


def task_states(flow_run_id: Any, expected: int, timeout: float = 60.0) -> dict[str, str]:
    """Final task-run states of a flow run, by task-run name.

    Prefect 3 records them asynchronously (events), so poll until all `expected` runs have reached a
    final state (or `timeout` s pass).
    """
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states: dict[str, str] = {}
            for r in runs:  # Prefect's 3-hex name suffixes can collide: keep every run
                if r.state is not None:
                    states[r.name if r.name not in states else f"{r.name}~{r.id.hex[:8]}"] = r.state.name
            if (
                len(states) >= expected and all(r.state and r.state.is_final() for r in runs)
            ) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)


@dataclass(frozen=True)
class TinyRun:
    """One fresh `tiny` pipeline run (the `tiny_run` fixture of tests/conftest.py), shared by the session.

    Read `root` only, and `copy_to` a root of your own before writing into one.
    """

    root: Path
    summary_path: Path
    flow_run_id: Any
    states: dict[str, str]  # its task runs' final state names, by task-run name
    _summary: dict[str, Any]
    server: str  # the API URL of the Prefect test server its flow run is on

    def save(self, path: Path) -> None:
        """Record the run in `path` (JSON) for the other xdist workers (`load`)."""
        fields = {"root": str(self.root), "summary_path": str(self.summary_path), "server": self.server}
        fields |= {"flow_run_id": str(self.flow_run_id), "states": self.states}
        path.write_text(json.dumps(fields))

    @classmethod
    def load(cls, path: Path) -> TinyRun:
        """The run `save` recorded in `path`."""
        fields = json.loads(path.read_text())
        summary_path = Path(fields["summary_path"])
        return cls(
            Path(fields["root"]),
            summary_path,
            uuid.UUID(fields["flow_run_id"]),
            fields["states"],
            json.loads(summary_path.read_text()),
            fields["server"],
        )

    @property
    def summary(self) -> dict[str, Any]:
        """The run's summary.json (a fresh copy per call: callers may change it)."""
        return copy.deepcopy(self._summary)

    def copy_to(self, dest: Path) -> Path:
        """A copy of the artifact root at `dest` (roots are relocatable); returns `dest`."""
        shutil.copytree(self.root, dest, dirs_exist_ok=True)
        return dest

    def in_copy(self, dest: Path) -> Path:
        """The run's summary.json inside a copy of the root at `dest`."""
        return dest / self.summary_path.relative_to(self.root)


def allocate_mb(mb: int) -> int:
    """Touch `mb` MB of memory at once and let it go (a worker job with a known peak); returns its length."""
    return len(b"x" * (mb << 20))


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def qmu_env(home: Path) -> dict[str, str]:
    """The environment of a `qmu` subprocess with its own PREFECT_HOME (and its own temporary server)."""
    from qmu_core import environment

    env = environment.child_env(PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    return env


def qmu_tiny(root: Path, home: Path, *extra: str) -> subprocess.Popen[str]:
    """`python -m qmu_cli run --preset tiny` into `root` as a user starts it (stdout and stderr together)."""
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", f"run.artifact_root={root}", *extra]
    return subprocess.Popen(
        cmd, cwd=REPO, env=qmu_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    """Wait for `proc`: its exit code and output."""
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out
