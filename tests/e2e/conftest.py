"""End-to-end tests: a real Prefect server, worker and browser. Opt in with `-m browser` (`make test-browser`)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests start a server, a worker and Chromium for minutes: only when `-m` asks for them."""
    if "browser" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a browser test: run it with `make test-browser` (pytest -m browser tests/e2e)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)
