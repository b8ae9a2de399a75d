"""Request (…In) and response (…Out) models of the API, with OpenAPI examples."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from fleet.types import SITE_ID_PATTERN


@functools.cache
def known_products() -> frozenset[str]:
    """Return every product some market's rules list, with ``energy`` and ``capacity``."""
    from dispatch.markets import available_markets, load_market_rules

    names = {"energy", "capacity"}
    for market in available_markets():
        names.update(load_market_rules(market).reserve_services)
    return frozenset(names)


def _known_product(value: str) -> str:
    """Accept a product some market's rules list (the market's own check follows)."""
    if value not in known_products():
        msg = (
            f"unknown product {value!r} (known: {', '.join(sorted(known_products()))})"
        )
        raise ValueError(msg)
    return value


Product = Annotated[str, Field(max_length=32), AfterValidator(_known_product)]
"""A market product: ``energy``, ``capacity`` or a reserve of the market rules."""

MarketName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$",
        description="Market (ISO) name, e.g. ERCOT.",
        examples=["ERCOT"],
    ),
]
SiteIdPath = Annotated[str, Field(pattern=SITE_ID_PATTERN, examples=["tx-odessa-01"])]


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
"""A float that is neither NaN nor infinite."""

INT32_MAX = 2**31 - 1
"""Largest integer both stores keep in an ``INTEGER`` column (PostgreSQL int4)."""
TIME_RANGE = (
    dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    dt.datetime(2100, 1, 1, tzinfo=dt.UTC),
)
"""Times the API accepts (UTC); outside it a time gets 422 naming the field."""
DAY_RANGE = (dt.date(1970, 1, 1), dt.date(2099, 12, 31))
"""Operating days the API accepts."""


def _time_in_range(value: dt.datetime) -> dt.datetime:
    try:
        utc = value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not TIME_RANGE[0] <= utc < TIME_RANGE[1]:
        msg = (
            f"{value.isoformat()} is outside {TIME_RANGE[0]:%Y-%m-%d}.."
            f"{TIME_RANGE[1]:%Y-%m-%d} (UTC)"
        )
        raise ValueError(msg)
    return utc


def _day_in_range(value: dt.date) -> dt.date:
    if not DAY_RANGE[0] <= value <= DAY_RANGE[1]:
        msg = f"{value.isoformat()} is outside {DAY_RANGE[0]}..{DAY_RANGE[1]}"
        raise ValueError(msg)
    return value


ApiDatetime = Annotated[AwareDatetime, AfterValidator(_time_in_range)]
"""An aware time within :data:`TIME_RANGE`, returned as UTC."""
ApiDate = Annotated[dt.date, AfterValidator(_day_in_range)]
"""A day within :data:`DAY_RANGE`."""


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorOut(_Out):
    """An error answer."""

    detail: str | list[dict[str, Any]] = Field(
        description="What was wrong, naming the field.",
        examples=["invalid or revoked API key"],
    )


class HealthOut(_Out):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = Field(
        default_factory=dict, examples=[{"store": True, "broker": True}]
    )
    detail: dict[str, str] = Field(default_factory=dict)


class SiteStateOut(_Out):
    """The latest measured state of a site (aggregated over its devices)."""

    ts: AwareDatetime | None = Field(description="Newest sample time (UTC).")
    online: bool | None = Field(description="Gateway online (None when unknown).")
    soc: float | None = Field(
        ge=-0.01, le=1.01, description="State of charge, fraction 0-1.", examples=[0.62]
    )
    power_mw: float | None = Field(
        description="Net power [MW], + discharge / - charge.", examples=[-1.25]
    )
    soh: float | None = Field(
        default=None, description="State of health, fraction 0-1.", examples=[0.971]
    )
    quality: str | None = Field(default=None, examples=["good"])
    lag_s: float | None = Field(
        default=None, description="Age of the newest sample [s].", examples=[1.2]
    )
    stale: bool = Field(
        default=True,
        description=(
            "The newest sample is older than the API's stale_after_s (300 s by "
            "default) or missing: its values are not current."
        ),
    )


class SiteOut(_Out):
    """A site: configuration summary and latest state."""

    site_id: str = Field(examples=["tx-odessa-01"])
    name: str = Field(examples=["Odessa storage 1"])
    market: str = Field(examples=["ERCOT"])
    node: str | None = Field(examples=["HB_WEST"])
    meter: str | None = Field(examples=["front"])
    timezone: str = Field(
        description="The market's clock (IANA).", examples=["America/Chicago"]
    )
    latitude: float | None = Field(examples=[31.85])
    longitude: float | None = Field(examples=[-102.37])
    discharge_mw: float | None = Field(examples=[10.0])
    charge_mw: float | None = Field(examples=[10.0])
    energy_mwh: float | None = Field(examples=[40.0])
    services: list[str] = Field(examples=[["energy", "reg_up"]])
    state: SiteStateOut | None = None


class SiteDetailOut(SiteOut):
    """A site with its full stored configuration."""

    config: dict[str, Any] = Field(description="The site as the fleet file gave it.")
    updated_at: AwareDatetime


class SiteListOut(_Out):
    """The fleet's sites."""

    items: list[SiteOut]
    count: int = Field(ge=0)


class FleetOut(_Out):
    """Fleet totals; the live ones (power, stored energy, SoC) from fresh sites only."""

    site_count: int = Field(ge=0, examples=[12])
    online_count: int = Field(
        ge=0, examples=[11], description="Sites online with fresh telemetry."
    )
    fresh_count: int = Field(
        ge=0,
        examples=[11],
        description="Sites whose newest sample is recent and not offline: the sites "
        "the live totals are summed over.",
    )
    stale_count: int = Field(
        ge=0, description="Sites with telemetry that is too old or reported offline."
    )
    missing_count: int = Field(ge=0, description="Sites with no telemetry at all.")
    stale_after_s: float = Field(description="Age that makes a sample stale [s].")
    discharge_mw: float = Field(description="Summed discharge rating [MW].")
    charge_mw: float = Field(description="Summed charge rating [MW].")
    energy_mwh: float = Field(description="Summed energy rating [MWh].")
    stored_energy_mwh: float | None = Field(
        description="Energy stored now in fresh sites [MWh]; None when none is fresh."
    )
    power_mw: float | None = Field(
        description="Net power now of fresh sites [MW], + discharge; None when none."
    )
    mean_soc: float | None = Field(
        default=None, description="Mean SoC of fresh sites, fraction 0-1."
    )
    markets: list[str]


class AvailabilityOut(_Out):
    """A site's availability and the share of expected telemetry received."""

    site_id: str
    start: AwareDatetime
    end: AwareDatetime
    online: bool | None
    samples: int = Field(ge=0, description="Telemetry samples stored in the window.")
    expected_samples: int = Field(ge=0, description="At the site's sample interval.")
    availability: float = Field(ge=0, le=1, description="samples / expected, 0-1.")
    available_discharge_mw: float | None = Field(
        description="Discharge power available now [MW] (0 when offline)."
    )


class TelemetryPointOut(_Out):
    """One resampled telemetry point (mean over the bucket)."""

    ts: AwareDatetime = Field(description="Bucket start (UTC).")
    soc: float | None = Field(description="Mean SoC, fraction 0-1.")
    power_mw: float | None = Field(description="Mean net power [MW], + discharge.")
    samples: int = Field(ge=0)


class TelemetryPageOut(_Out):
    """One page of a site's telemetry history."""

    site_id: str
    dev: str | None
    start: AwareDatetime
    end: AwareDatetime
    resample_s: int
    points: list[TelemetryPointOut]
    next_cursor: AwareDatetime | None = Field(
        description="Pass as ``start`` to get the next page; None on the last page."
    )


class SchedulePointOut(_Out):
    """One interval of a site's schedule."""

    ts: AwareDatetime = Field(description="Interval start (UTC).")
    power_mw: float = Field(description="Planned net power [MW], + discharge.")
    charge_mw: float
    discharge_mw: float
    reg_up_mw: float
    reg_down_mw: float
    spin_mw: float
    soc: float | None = Field(description="Planned SoC at interval end, 0-1.")


class ScheduleSummaryOut(_Out):
    """A stored schedule (without its series)."""

    schedule_id: int
    market: str
    operating_day: dt.date
    version: int
    created_at: AwareDatetime
    status: str = Field(examples=["optimal"])
    objective_usd: float | None
    solve_path: str | None
    interval_minutes: int | None
    revenue_usd: dict[str, float] = Field(
        default_factory=dict, examples=[{"energy": 1234.5, "degradation": -80.0}]
    )


class SiteScheduleOut(_Out):
    """A schedule's series for one site."""

    site_id: str
    points: list[SchedulePointOut]


class ScheduleOut(ScheduleSummaryOut):
    """A schedule with per-site series and fleet totals."""

    sites: list[SiteScheduleOut]
    fleet_power_mw: list[float] = Field(
        description="Fleet net power per interval [MW], + discharge."
    )
    fleet_ts: list[AwareDatetime]


class ScheduleListOut(_Out):
    """Stored schedules, newest first."""

    items: list[ScheduleSummaryOut]


class ScheduleVsRealizedOut(_Out):
    """A site's current schedule next to its realized power and SoC."""

    site_id: str
    timezone: str
    start: AwareDatetime
    end: AwareDatetime
    schedule: ScheduleWindowOut | None
    realized: list[TelemetryPointOut]


class ScheduleWindowOut(_Out):
    """The planned series of the newest schedule covering a window."""

    schedule_id: int
    version: int
    status: str
    created_at: AwareDatetime
    interval_minutes: int
    points: list[SchedulePointOut]


class ReserveCoverageItemOut(_Out):
    """One site's award of one reserve product against what the plan holds."""

    site_id: str
    product: str = Field(examples=["reg_up"])
    intervals: int = Field(ge=0, description="Awarded intervals.")
    awarded_mwh: float = Field(
        description="Award times interval length, summed [MW·h]."
    )
    held_mwh: float = Field(
        description="Reserve the plan holds against the award, summed [MW·h]."
    )
    shortfall_mwh: float = Field(
        ge=0, description="Award the plan does not hold, summed [MW·h]."
    )
    short_intervals: int = Field(ge=0)


class ReserveCoverageOut(_Out):
    """Ancillary-service awards per site vs the reserve the newest schedule holds."""

    market: str
    operating_day: dt.date
    timezone: str
    award_version: int | None = Field(description="Award version; None: no awards.")
    schedule_version: int | None = Field(description="Schedule compared; None: none.")
    products: list[str] = Field(description="Reserve products a schedule can hold.")
    items: list[ReserveCoverageItemOut]


class SettlementOut(_Out):
    """What was settled for a market day, by item (energy, AS, charges, ...)."""

    market: str
    operating_day: dt.date
    available: bool = Field(
        description="The store keeps settlements (False: only planned revenue exists)."
    )
    settled_at: AwareDatetime | None = Field(description="Newest settlement time.")
    by_item_usd: dict[str, float] = Field(
        examples=[{"energy": 5321.0, "reg_up": 812.0}]
    )
    total_usd: float | None = Field(description="None when nothing is settled.")
    sites: int = Field(ge=0, description="Sites with settled rows.")


class ForecastPointOut(_Out):
    """One forecast interval with its quantiles."""

    ts: AwareDatetime
    p10: float | None
    p50: float
    p90: float | None


class ForecastOut(_Out):
    """A price forecast for one market, node and product at one issue time."""

    market: str
    node: str
    product: str = Field(examples=["energy"])
    issue_time: AwareDatetime
    model_version: str
    unit: str = Field(examples=["usd_per_mwh"])
    points: list[ForecastPointOut]


class RevenueOut(_Out):
    """Revenue by service over a window, from the newest schedule of each day."""

    start: AwareDatetime
    end: AwareDatetime
    by_service_usd: dict[str, float] = Field(
        examples=[{"energy": 5321.0, "reg_up": 812.0, "degradation": -410.0}]
    )
    degradation_usd: float = Field(description="Degradation cost (≥ 0) [USD].")
    total_usd: float
    schedules: int = Field(ge=0)


class WarrantyOut(_Out):
    """A site's warranty use and state of health."""

    site_id: str
    soh: float | None = Field(description="Latest measured SoH, fraction 0-1.")
    warranty_years: int
    warranty_throughput_mwh: float
    commissioned: dt.date
    years_in_service: float
    planned_throughput_mwh: float = Field(
        description="Discharge energy in stored schedules [MWh]."
    )
    throughput_used: float = Field(description="planned / warranty throughput, 0-1+.")
    max_average_soc: float | None
    max_c_rate_per_h: float | None


class BidSetIn(_In):
    """A day-ahead bid set a scheduler pushes for one market and operating day."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "bids": [
                        {
                            "site_id": "tx-odessa-01",
                            "product": "energy",
                            "hour_ending": 18,
                            "curve": [[-10.0, 15.0], [0.0, 30.0], [10.0, 120.0]],
                        }
                    ],
                    "note": "DA bid",
                }
            ]
        },
    )

    bids: list[BidIn] = Field(min_length=1, max_length=5000)
    schedule_version: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description=(
            "Schedule version the bids were built from; stored as the bid set's "
            "version. Default: one more than the newest stored bid set version."
        ),
    )
    note: str | None = Field(default=None, max_length=500)


class BidIn(_In):
    """One bid: a (MW, $/MWh or $/MW-h) curve for a site, product and hour."""

    site_id: str = Field(pattern=SITE_ID_PATTERN)
    product: Product
    hour_ending: int = Field(ge=1, le=25, description="Hour ending (1-24, 25 on DST).")
    curve: list[tuple[FiniteFloat, FiniteFloat]] = Field(
        min_length=1,
        max_length=10,
        description="(MW, price) pairs, MW - = charge, non-decreasing in both.",
    )


class BidSetOut(_Out):
    """A stored bid set."""

    bid_set_id: int
    market: str
    operating_day: dt.date
    version: int
    status: str
    submitted_by: str
    created_at: AwareDatetime
    refusal_reason: str | None
    payload: dict[str, Any]


class AwardIn(_In):
    """One awarded quantity for a site, product and interval."""

    site_id: str = Field(pattern=SITE_ID_PATTERN)
    ts: ApiDatetime = Field(description="Interval start (UTC).")
    product: Product
    award_mw: float = Field(ge=-10000, le=10000)
    price: float | None = Field(default=None, ge=-10000, le=100000)
    unit: Literal["usd_per_mwh", "usd_per_mw"]


class AwardSetIn(_In):
    """The awards received for a market and operating day."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "version": 1,
                    "awards": [
                        {
                            "site_id": "tx-odessa-01",
                            "ts": "2026-11-25T23:00:00Z",
                            "product": "energy",
                            "award_mw": 8.0,
                            "price": 42.1,
                            "unit": "usd_per_mwh",
                        }
                    ],
                }
            ]
        },
    )

    version: int = Field(
        ge=1, le=INT32_MAX, description="Version of the bid set these answer."
    )
    awards: list[AwardIn] = Field(min_length=1, max_length=20000)


class AwardSummaryOut(_Out):
    """The awards of one market, operating day and bid version."""

    market: str
    operating_day: dt.date
    version: int
    created_at: AwareDatetime
    interval_count: int
    sites: list[str]
    award_mwh_by_product: dict[str, float]


class AwardListOut(_Out):
    """Award sets, newest first."""

    items: list[AwardSummaryOut]


class AwardRowOut(_Out):
    """One awarded interval."""

    site_id: str
    ts: AwareDatetime
    product: str
    award_mw: float
    price: float | None
    unit: str


class AwardSetOut(_Out):
    """The awards of one market, operating day and version."""

    market: str
    operating_day: dt.date
    version: int
    awards: list[AwardRowOut]


class KeyIn(_In):
    """A key to create."""

    role: Literal["viewer", "scheduler", "admin"]
    note: str | None = Field(default=None, max_length=500)
    expires_at: ApiDatetime | None = Field(
        default=None,
        description="When the key stops working (future, with a zone); None: never.",
        examples=["2027-03-01T00:00:00Z"],
    )


class KeyOut(_Out):
    """A stored API key (never its secret)."""

    key_id: str
    prefix: str
    role: str
    created_at: AwareDatetime
    revoked_at: AwareDatetime | None
    note: str | None
    expires_at: AwareDatetime | None = Field(
        default=None, description="Expiry (UTC); None: the key does not expire."
    )


class SessionIn(_In):
    """An API key to exchange for a dashboard session."""

    key: str = Field(min_length=1, max_length=100, examples=["bfk_0123456789ab_…"])


class SessionOut(_Out):
    """Who a request is authenticated as, and until when."""

    key_id: str
    role: str
    key_expires_at: AwareDatetime | None = Field(
        description="Expiry of the key (UTC); None: it does not expire."
    )
    expires_at: AwareDatetime | None = Field(
        description="Expiry of the session (UTC); None when authenticated by key."
    )


class NewKeyOut(KeyOut):
    """A created key; ``secret`` is shown this once."""

    secret: str


class KeyListOut(_Out):
    """Stored API keys."""

    items: list[KeyOut]


class AuditEntryOut(_Out):
    """One audit log entry."""

    id: int
    ts: AwareDatetime
    actor: str
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


class AuditListOut(_Out):
    """Audit entries, newest first."""

    items: list[AuditEntryOut]


class SiteComplianceOut(_Out):
    """One site's FEOC compliance for a year."""

    site_id: str
    year: int
    non_feoc_share: float = Field(description="Non-FEOC capex share, 0-1.")
    threshold: float = Field(description="Required non-FEOC share, 0-1.")
    passes: bool
    margin: float = Field(description="non_feoc_share - threshold (fraction).")
    feoc_components: list[str] = Field(examples=[["cell", "module"]])


class ComplianceOut(_Out):
    """The FEOC compliance report of the fleet for a year."""

    year: int = Field(examples=[2026])
    site_count: int
    passing_count: int
    sites: list[SiteComplianceOut]


class AlertOut(_Out):
    """A condition alert raised by the health scan (``fleet.health``)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "alert_id": 7,
                    "site_id": "tx-odessa-01",
                    "dev_id": "bank2",
                    "kind": "thermal_outlier",
                    "severity": "warning",
                    "opened_at": "2026-11-25T06:00:00Z",
                    "closed_at": None,
                    "open": True,
                    "acknowledged_by": None,
                    "acknowledged_at": None,
                    "action": "inspect the string's cooling (fan, HVAC duct, filter)",
                    "timezone": "America/Chicago",
                    "detail": {
                        "dev_id": "bank2",
                        "day": "2026-11-24",
                        "statistic": "cell_t_max_c robust z vs the site's devices",
                        "value": 6.1,
                        "threshold": 3.5,
                        "occurrences": 2,
                    },
                }
            ]
        },
    )

    alert_id: int = Field(ge=1)
    site_id: str | None = Field(examples=["tx-odessa-01"])
    dev_id: str = Field(
        description="Device the alert is about (``*`` for site-wide).",
        examples=["bank2"],
    )
    kind: str = Field(description="Detector kind.", examples=["thermal_outlier"])
    severity: Literal["info", "warning", "critical"]
    opened_at: AwareDatetime = Field(description="When it was first raised (UTC).")
    closed_at: AwareDatetime | None = Field(
        description="When its condition cleared (UTC); None while open."
    )
    open: bool = Field(description="closed_at is None.")
    acknowledged_by: str | None = Field(
        description="Key id (or CLI user) that acknowledged it.", examples=[None]
    )
    acknowledged_at: AwareDatetime | None = Field(
        description="When it was acknowledged (UTC)."
    )
    action: str | None = Field(
        description="Recommended action from the detector.",
        examples=["inspect the string's cooling (fan, HVAC duct, filter)"],
    )
    timezone: str = Field(
        description="The site's market clock (IANA; UTC when the site is unknown).",
        examples=["America/Chicago"],
    )
    detail: dict[str, Any] = Field(
        description="Statistic, value, threshold, day, occurrences, …"
    )


class AlertListOut(_Out):
    """Alerts, newest first, one page."""

    items: list[AlertOut]
    count: int = Field(ge=0, description="Alerts matching the filter (all pages).")
    limit: int = Field(ge=1)
    offset: int = Field(ge=0)


ScheduleVsRealizedOut.model_rebuild()
BidSetIn.model_rebuild()
