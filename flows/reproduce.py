"""`qmu reproduce`: the paper's study end to end, and REPRODUCTION.md beside the paper's numbers."""

from __future__ import annotations

import time

from flows.hardware import qmu_hardware, qmu_shots
from flows.pipeline import qmu_pipeline
from qmu_core import reproduction
from qmu_core.config import ReproduceConfig
from qmu_core.errors import ConfigError
from qmu_core.storage import is_url
from qmu_prefect.flow import qmu_flow
from tasks._stage import collecting
from tasks.reproduction import publish_reproduction, record_study, reuse_study

_FLOWS = {"simulation": qmu_pipeline, "device": qmu_hardware, "shots": qmu_shots}


def _reproduce_run_name() -> str:
    return f"reproduce-{time.strftime('%Y%m%d-%H%M%S')}"


@qmu_flow("qmu-reproduce", flow_run_name=_reproduce_run_name, checks_config=False)
def qmu_reproduce(config: ReproduceConfig = ReproduceConfig()) -> str:  # noqa: B008 - the form starts from the defaults
    """The paper's study: its two models over seeds under both protocols, the device, the shots.

    Every run is an ordinary QMU run with its own report and reuses every cached stage; a run
    whose config, data and code did not change is reused whole once its artifacts verify
    (`qmu_core.study_records`). Returns REPRODUCTION.md's path.
    """
    started = time.time()
    if is_url(config.artifact_root):
        raise ConfigError(
            f"reproduce writes its report beside local files; artifact_root={config.artifact_root!r} is a URL."
        )
    results, reused = {}, []
    # Simulation: `paper` and `paper_hqnn` on MNIST over the training seeds, audited under the sound
    # protocol and then under the paper's (the second run reuses every model of the first).
    # Device: `paper_angle` through the emulator with each processor's noise, then the shot study.
    for study in reproduction.studies(config):
        results[study.key] = reuse_study(study.key, study.config)
        if results[study.key] is not None:
            reused.append(study.key)
            continue
        with collecting() as used:
            results[study.key] = _FLOWS[study.kind](study.config)
        record_study(study.key, study.config, results[study.key], sorted(used, key=str))

    # Every claim of the paper beside our mean and CI, with its verdict and its controls.
    return publish_reproduction(results=results, config=config, started=started, reused=reused)
