"""QMU's domain library: membership leakage and machine unlearning for quantum neural networks.

Prefect-free (import-linter checks it). Importing `qmu_core` or its study modules (config,
presets, artifacts, splits, membership, attacks, metrics, report, export) never imports
TensorFlow; the QNN side (`qmu_core.qnn.models`, `.training`, `.jobs`, `.backends`) does,
through `qmu_core._tf`.
"""

from qmu_core.errors import ArtifactError, ConfigError, DataError, QMUError

__version__ = "0.1.0"

__all__ = ["ArtifactError", "ConfigError", "DataError", "QMUError", "__version__"]
