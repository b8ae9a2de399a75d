"""Detect battery condition faults from telemetry: pure detectors and estimators."""
