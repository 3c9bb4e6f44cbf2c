"""`python -m flows ...` is the same as `qmu ...`."""

import sys

from flows.cli import main

sys.exit(main())
