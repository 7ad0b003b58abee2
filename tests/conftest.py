"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock

pytest_plugins = ["tests.slackdouble", "tests.feedserver"]


@pytest.fixture
def clock() -> Iterator[FixedClock]:
    yield FixedClock(datetime(2025, 7, 31, 6, 0, tzinfo=UTC))
