"""Steps `prefect deploy` runs from prefect.yaml, so a missing setting fails at deploy time.

`check_repo` is the build step of every deployment: the worker runs the flows from a checkout
of this repository (the pull step changes into it), so ``QMU_REPO`` must name one, on the
machine where the worker will run. Without it, a deployment would register fine and every run
would crash later on the worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from qmu_core.errors import QMUError

__all__ = ["DeployError", "check_repo"]


class DeployError(QMUError):
    """A deployment setting is missing or wrong."""


def check_repo(variable: str = "QMU_REPO") -> dict[str, str]:
    """The QMU checkout named by ``$QMU_REPO`` (`variable`), checked: ``{"directory": path}``.

    Raises:
        DeployError: If the variable is unset, or does not name a QMU checkout.
    """
    how = (
        f"Run `{variable}=$PWD prefect deploy --all` from the repository's root, and start the worker "
        f"(`prefect worker start --pool qmu-process`) on a machine where that path is this repository "
        "with its .venv installed (`make run` once creates it)."
    )
    value = os.environ.get(variable, "").strip()
    if not value:
        raise DeployError(
            f"{variable} is not set. The worker runs QMU's flows from a checkout of the repository. {how}"
        )
    repo = Path(value).expanduser().resolve()
    missing = [p for p in ("prefect.yaml", "flows/pipeline.py", "qmu_core/__init__.py") if not (repo / p).is_file()]
    if missing:
        raise DeployError(
            f"{variable}={value!r} is not a QMU checkout: {', '.join(missing)} not found in {repo}. {how}"
        )
    return {"directory": str(repo)}
