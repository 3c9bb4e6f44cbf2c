"""The process environment every QMU process needs, declared once.

* ``TF_USE_LEGACY_KERAS=1``: TFQ layers are Keras-2 layers, so TensorFlow must load ``tf_keras``;
  it reads the variable when it is imported.
* ``TF_CPP_MIN_LOG_LEVEL=3``: quiet TensorFlow's C++ logging.
* ``PREFECT_SERVER_ANALYTICS_ENABLED=false``: no telemetry from a Prefect server (offline it logs
  an ERROR).

A value the user set wins. `apply` sets the rest in this process, before Prefect or TensorFlow is
imported (the CLI, `qmu_core._tf`, the training workers, the test suite); `child_env` is the
environment of a process QMU starts (an API server, a test's ``qmu``). ``python -m
qmu_core.environment COMMAND ...`` runs a command with it (``make ui``'s Prefect server).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ENV", "apply", "child_env"]

ENV: Mapping[str, str] = MappingProxyType(
    {
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
)
"""Each variable QMU needs, with its value (module doc)."""


def apply() -> None:
    """Set every variable of `ENV` the process's environment does not set yet.

    Also hides google-api-core's notice (on import, through cirq-google) that it drops Python 3.11
    in 2027: nothing a QMU user can act on, and a first run should print no alarms.
    """
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a process QMU starts.

    This process's, the `ENV` values it does not set, then `extra`.
    """
    return {**ENV, **os.environ, **extra}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m qmu_core.environment COMMAND [ARG ...]")
    os.execvpe(sys.argv[1], sys.argv[1:], child_env())
