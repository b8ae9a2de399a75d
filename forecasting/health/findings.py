"""Define the detector outputs: findings with a statistic, a severity and an action."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How urgent a finding is (the store's ``alerts.severity`` values)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class FindingKind(StrEnum):
    """What a detector looks for (the store's ``alerts.kind`` values)."""

    IMBALANCE = "cell_imbalance"
    THERMAL = "thermal_outlier"
    FAST_FADE = "fast_fade"
    RTE_SLIDE = "rte_slide"
    TELEMETRY_QUALITY = "telemetry_quality"
    ANOMALY = "daily_anomaly"


ACTIONS: dict[FindingKind, str] = {
    FindingKind.IMBALANCE: (
        "run a full balancing charge; if the spread stays high, inspect and swap the "
        "module holding the drifting cell"
    ),
    FindingKind.THERMAL: (
        "inspect the string's cooling (fan, HVAC duct, filter); derate the string "
        "until fixed"
    ),
    FindingKind.FAST_FADE: (
        "run a capacity test; check the string's temperature and cycling history; "
        "review the warranty claim window"
    ),
    FindingKind.RTE_SLIDE: (
        "check the auxiliary load (HVAC), PCS efficiency and contactor resistance; "
        "recalibrate the meters"
    ),
    FindingKind.TELEMETRY_QUALITY: (
        "check the BMS link and the site gateway (network, firmware); compare with "
        "the local historian"
    ),
    FindingKind.ANOMALY: "review the day's telemetry of this string against its peers",
}
"""The recommended action of each finding kind."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's verdict for one device on one day."""

    site_id: str
    """Site id."""
    dev_id: str
    """Device (string or module) id; ``"*"`` for a site-wide finding."""
    kind: FindingKind
    """What was detected."""
    severity: Severity
    """How urgent it is."""
    day: dt.date
    """UTC day whose features raised it."""
    statistic: str
    """Name of the statistic tested (with its unit)."""
    value: float
    """Value of the statistic that day."""
    threshold: float
    """Threshold the value crossed (same unit)."""
    action: str
    """Recommended action."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Extra numbers (baseline, peers…), JSON-ready."""

    @property
    def key(self) -> tuple[str, str, str]:
        """Deduplication key: one open alert per (site, device, kind)."""
        return (self.site_id, self.dev_id, self.kind.value)

    def as_detail(self) -> dict[str, Any]:
        """Return the JSON document stored with an alert."""
        return {
            "dev_id": self.dev_id,
            "day": self.day.isoformat(),
            "statistic": self.statistic,
            "value": round(self.value, 6),
            "threshold": round(self.threshold, 6),
            "action": self.action,
            **self.detail,
        }
