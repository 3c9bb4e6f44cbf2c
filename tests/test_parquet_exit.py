"""Users' scripts read our Parquet with pandas; the interpreter must then exit cleanly, every time.

With pandas < 3.1, `pd.read_parquet(<local path>)` opens the file in Python and hands pyarrow the
Python file object. pyarrow's scanner drops its last buffer of that file on one of its pool threads,
after `read_parquet` has returned and without interpreter exit waiting for it; releasing that buffer
takes the GIL, and if the interpreter is finalizing by then the thread is unwound inside a C++
destructor: "terminate called without an active exception", SIGABRT (exit 134 in a shell, -6 here).
Every pyarrow we tried (17.0.0 to 26.0.1) does this (25+ only narrow the window), so no pyarrow pin
fixes it. pandas >= 3.1 opens local files in pyarrow's C++ layer (pandas GH#47702) and did not abort
in our runs, but cirq-core 1.5.0 (pinned by tensorflow-quantum 0.7.6) requires pandas~=2.0. Until then the
test is an expected failure, kept out of the default suite (`make test-slow` runs it); scripts can pass
``filesystem=pyarrow.fs.LocalFileSystem()`` to `pd.read_parquet`, or use
``pyarrow.parquet.read_table(path).to_pandas()``.

The race depends on timing (a few percent of runs on a loaded 2-core machine, fewer when idle), so
the one-liner runs many times, two at once.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmu_core import artifacts

N_RUNS = 20
AT_ONCE = 2
PANDAS_READS_THROUGH_PYTHON = tuple(int(p) for p in pd.__version__.split(".")[:2]) < (3, 1)


def _outputs_frame(n: int = 300, n_classes: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    prob = rng.random((n, n_classes)).astype(np.float32)
    prob /= prob.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {
            "model_id": ["target"] * n,
            "sample_id": np.arange(n, dtype=np.int64),
            "role": rng.choice(["train", "holdout", "test"], size=n),
            "label": rng.integers(0, n_classes, size=n).astype(np.int64),
            "is_forget": rng.random(n) < 0.25,
            "prob": list(prob),
            "z": list(rng.uniform(-1, 1, (n, 4)).astype(np.float32)),
            "loss": rng.random(n),
            "correct": rng.random(n) < 0.7,
        }
    )


@pytest.fixture
def outputs_artifact(tmp_path: Path) -> Path:
    inputs = {"test": "parquet-exit"}
    ref = artifacts.write(_outputs_frame(), artifacts.plan("outputs", inputs, root=tmp_path), inputs)
    assert len(artifacts.read(ref)) == 300
    return ref.path


def _exit_codes(one_liner: str) -> None:
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    codes: collections.Counter[int] = collections.Counter()
    errors: list[str] = []
    for start in range(0, N_RUNS, AT_ONCE):
        batch = [
            subprocess.Popen(
                [sys.executable, "-c", one_liner],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(min(AT_ONCE, N_RUNS - start))
        ]
        for proc in batch:
            _, err = proc.communicate(timeout=120)
            codes[proc.returncode] += 1
            if proc.returncode != 0:
                errors.append(err.strip()[:2000])
    assert codes == {0: N_RUNS}, (
        f"exit codes of {N_RUNS} runs of `python -c {one_liner!r}`: {dict(codes)} (-6 = SIGABRT)\n"
        f"first failure's stderr:\n{errors[0] if errors else ''}"
    )


@pytest.mark.slow  # an upstream race we cannot fix (above): it documents it, `make test-slow` runs it
@pytest.mark.xfail(
    PANDAS_READS_THROUGH_PYTHON,
    reason="pandas < 3.1 reads through a Python file; pyarrow then aborts at exit in a few percent of runs",
    strict=False,
)
@pytest.mark.timeout(180)
def test_read_parquet_one_liner_always_exits_cleanly(outputs_artifact: Path) -> None:
    _exit_codes(f"import pandas as pd; pd.read_parquet({str(outputs_artifact)!r})")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "reader",
    [
        "import pyarrow.parquet as pq; pq.read_table({path!r}).to_pandas()",
        "import pandas as pd, pyarrow.fs as fs; pd.read_parquet({path!r}, filesystem=fs.LocalFileSystem())",
        "from qmu_core import artifacts; artifacts.read_path({path!r})",
    ],
    ids=["pyarrow", "pandas-filesystem", "qmu"],
)
def test_the_documented_ways_to_read_exit_cleanly(outputs_artifact: Path, reader: str) -> None:
    _exit_codes(reader.format(path=str(outputs_artifact)))
