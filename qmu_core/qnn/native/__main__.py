"""``python -m qmu_core.qnn.native [--force]``: build QMU's native op (see the package docstring)."""

from __future__ import annotations

import sys

from qmu_core.qnn.native import build


def main(argv: list[str]) -> int:
    """Build the op and print the library's path; exit 1 with the reason if it cannot be built."""
    try:
        print(build(force="--force" in argv))
    except RuntimeError as exc:
        print(f"qmu: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
