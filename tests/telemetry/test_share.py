"""The shared-subscription option of the ingest worker."""

from __future__ import annotations

import subprocess
import sys

import pytest

from telemetry.errors import TelemetryInputError
from telemetry.topics import ingest_subscription


def test_ingest_subscription_is_shared_when_share_group_given() -> None:
    assert ingest_subscription() == "bess/v1/+/+/up/#"
    assert (
        ingest_subscription("ercot", "ingest") == "$share/ingest/bess/v1/ercot/+/up/#"
    )


def test_ingest_subscription_raises_naming_share_when_group_name_invalid() -> None:
    with pytest.raises(TelemetryInputError, match="share='bad/name'"):
        ingest_subscription(None, "bad/name")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--share", "Bad Name"], "--share='Bad Name'"),
        (["--share", "ingest", "--protocol", "3.1.1"], "--protocol 5"),
    ],
)
def test_ingest_cli_exits_2_naming_option_when_share_invalid(
    args: list[str], needle: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fleet", "ingest", "--db", "sqlite://", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
