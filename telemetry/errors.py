"""Exceptions of the telemetry package."""

from __future__ import annotations


class TelemetryInputError(ValueError):
    """Bad input to the telemetry package (configuration, setpoint outside limits, …)."""
