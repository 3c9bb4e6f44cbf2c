"""The only module that imports TensorFlow and TensorFlow Quantum.

TFQ layers are Keras-2 layers, so `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is
imported. TF's C++ logging is quieted unless the user chose a level. TensorFlow's Linux wheel
registers its CUDA plugins at import time and, on a machine without a GPU, writes
"Unable to register cuDNN/cuFFT/cuBLAS factory" lines to the stderr file descriptor before
its logging is set up; those known lines are filtered, anything else is passed through.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from qmu_core import environment

environment.apply()  # TF_USE_LEGACY_KERAS before TensorFlow is imported

_KNOWN_NOISE = re.compile(
    r"Unable to register cu(DNN|FFT|BLAS) factory|All log messages before absl::InitializeLog"
    r"|computation placer already registered|TF-TRT Warning|This TensorFlow binary is optimized"
)


def _import_quietly() -> tuple[Any, Any, Any]:
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow
            import tensorflow_quantum
            import tf_keras
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not _KNOWN_NOISE.search(line):
                    # Not `print`: in a Prefect run with log_prints it logs into the importing task's
                    # log, and fd 2 is the process's, so these lines may be other threads' console
                    # lines (other tasks' log records, already sent to the API) caught meanwhile.
                    sys.stderr.write(line + "\n")
    return tensorflow, tensorflow_quantum, tf_keras


if TYPE_CHECKING:  # untyped packages: mypy sees them as Any (pyproject's [tool.mypy] overrides)
    import tensorflow as tf
    import tensorflow_quantum as tfq
    import tf_keras
else:
    tf, tfq, tf_keras = _import_quietly()
    tf.get_logger().setLevel("ERROR")

__all__ = ["tf", "tf_keras", "tfq"]
