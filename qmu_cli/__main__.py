"""`python -m qmu_cli ...` is the same as `qmu ...`."""

import sys

from qmu_cli.root import main

sys.exit(main())
