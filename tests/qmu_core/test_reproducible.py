"""Features do not depend on the CPU's BLAS kernels (OPENBLAS_CORETYPE stands in for other CPUs).

PCA runs in float64, so kernels change its coordinates by float64 rounding only; the float32
features the model reads then differ by at most one float32 rounding step at the features'
scale (a value that sits on a float32 rounding boundary may round either way).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CORETYPES = ["Haswell", "SkylakeX", "Sandybridge", "Zen", "Prescott"]
SCRIPT = """
import sys
import numpy as np
from qmu_core import frames, splits
from qmu_core.features import FeatureMap
from qmu_core.config import preset
arrays = {}
for name in ("tiny", "default"):
    cfg = preset(name)
    out = splits.split_roles(cfg.data, cfg.model.feature_spec, seed=0)
    pixels = frames.stack(out.frame["pixels"], np.float64) * 0.5 + 0.5
    train = (out.frame["role"] == "target_train").to_numpy()
    fmap = FeatureMap.fit(pixels[train], cfg.model.feature_spec)
    arrays[name + "_x"] = frames.stack(out.frame["x"])
    arrays[name + "_z"] = fmap.project(pixels)
    arrays[name + "_ids"] = out.frame["sample_id"].to_numpy()
np.savez(sys.argv[1], **arrays)
"""


def test_features_agree_to_rounding_under_every_blas_kernel(tmp_path: Path) -> None:
    seen = {}
    for coretype in CORETYPES:
        env = {**os.environ, "OPENBLAS_CORETYPE": coretype}
        path = tmp_path / f"{coretype}.npz"
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(path)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        seen[coretype] = dict(np.load(path))
    first = seen[CORETYPES[0]]
    for coretype, arrays in seen.items():
        for name in ("tiny", "default"):
            np.testing.assert_array_equal(arrays[name + "_ids"], first[name + "_ids"])  # the same records
            z, z0 = arrays[name + "_z"], first[name + "_z"]
            scale = np.abs(z0).max()
            np.testing.assert_allclose(z, z0, rtol=0, atol=1e-10 * scale, err_msg=f"{coretype} {name}")
            x, x0 = arrays[name + "_x"], first[name + "_x"]
            one_ulp = np.finfo(np.float32).eps * np.abs(x0).max()  # float32 rounding at the features' scale
            np.testing.assert_allclose(x, x0, rtol=0, atol=one_ulp, err_msg=f"{coretype} {name}")
