"""`qmu`, QMU's command line: one module per command group, as `prefect/cli/` cuts Prefect's.

`root` builds the parser and turns errors into exit codes. The commands: `run`, `audit` and
`hardware` (``hardware``, ``shots``) start flows through `flow_run`; `export`, `config` and
`artifacts` work without Prefect. Shared helpers: `options` (``--preset`` / ``--config`` /
``--set``), `log_filter` (a failed stage reported once, as its own error) and `signals`
(Ctrl-C and SIGTERM).
"""

from qmu_core import environment

environment.apply()  # before Prefect or TensorFlow are imported
