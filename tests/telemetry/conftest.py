"""Fixtures of the telemetry tests: no ingest subprocess outlives its test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.telemetry.helpers import RUNNING


@pytest.fixture(autouse=True)
def _stop_leftover_ingests() -> Iterator[None]:
    yield
    while RUNNING:
        RUNNING.pop().stop()
