"""QMU on the Prefect platform: what the flows and stages run on, apart from what they compute.

* `flow`: `qmu_flow`, how every QMU flow is declared (runner, run names, config check, rebuild).
* `runs`: a flow run's config check, name and tags.
* `runner`: the task runner the run's own config chooses (threads or Dask).
* `server`: the Prefect API a `qmu` command talks to (the user's, or a temporary one).
* `ui`: the run's report, tables, files and progress as flow-run artifacts in the Prefect UI.
* `log`: stage logging, progress lines and bars, and `best_effort` calls to the API.
* `deploy`: the build step of prefect.yaml's deployments.

Below `tasks` and `flows`, above `qmu_core` (import-linter's layers contract).
"""
