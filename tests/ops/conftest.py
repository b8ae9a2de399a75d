"""Fixtures of the operations tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Broker, start_mosquitto, stop_mosquitto


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto broker of this test alone.

    Whole-fleet runs leave retained births and persistent sessions behind; on the
    session's shared broker they would reach later tests as unknown sites.
    """
    broker = start_mosquitto(tmp_path / "own-broker")
    yield broker
    stop_mosquitto(broker)
