"""QMU's Prefect flows: composition only.

Each flow composes the stages of `tasks` (`steps` holds the steps they share) and is
declared with `qmu_prefect.flow.qmu_flow`; the Prefect platform code (API server, task
runner, UI artifacts, deploy step) is `qmu_prefect`, the command line `qmu_cli`.
"""

from qmu_core import environment

environment.apply()  # a Prefect worker imports the flows first: quiet TensorFlow, no Python-version notice
