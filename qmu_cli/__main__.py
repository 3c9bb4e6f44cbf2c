"""`python -m qmu_cli ...` is the same as `qmu ...`."""

from qmu_cli.root import entry

entry()
