"""Test tiers for every test directory: the cost markers (pyproject's ``markers``) imply ``slow``, so
``-m "not slow"`` is the fast edit-test tier and ``-m parity`` (or ``multiprocess``, ``notebook``,
``browser``, ``end_to_end``, ``backends``) selects one kind of cost."""

from __future__ import annotations

import pytest

COSTS = ("parity", "multiprocess", "notebook", "browser", "end_to_end", "backends")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(cost) for cost in COSTS):
            item.add_marker(pytest.mark.slow)
