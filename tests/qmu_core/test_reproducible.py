"""Features do not depend on the CPU's BLAS kernels (OPENBLAS_CORETYPE stands in for other CPUs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORETYPES = ["Haswell", "SkylakeX", "Sandybridge", "Zen", "Prescott"]
SCRIPT = """
import hashlib
from qmu_core import frames, splits
from qmu_core.presets import preset
for name in ("tiny", "default"):
    cfg = preset(name)
    out = splits.split_roles(cfg.data, cfg.model.feature_spec, seed=0)
    print(name, hashlib.sha256(frames.stack(out.frame["x"]).tobytes()).hexdigest())
"""


def test_features_are_bit_identical_under_every_blas_kernel() -> None:
    seen = {}
    for coretype in CORETYPES:
        env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
        done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        seen[coretype] = done.stdout
    assert len(set(seen.values())) == 1, seen
