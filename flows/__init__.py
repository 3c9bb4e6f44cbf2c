"""Prefect flows: composition only (they compose the stages in `tasks`)."""

import warnings

# cirq-google imports google-api-core, which announces on stderr that it drops Python 3.11 in 2027:
# nothing a QMU user can act on, and a first run should print no alarms.
warnings.filterwarnings("ignore", message="You are using a Python version", category=FutureWarning)
