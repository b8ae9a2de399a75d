"""Wire the condition detectors to the store: scan telemetry, keep alerts, derate.

``scan_site`` reads a site's battery-device telemetry from the store, computes the
daily features (``forecasting.health.features``), maps each device-day to the module
serial the registry had there, runs the detectors (``forecasting.health.detectors``)
and keeps one open alert per (site, device, kind, serial): a condition found within
the last ``hold_days`` days opens or refreshes its alert (a return after an absence is
a new episode of the same alert); an open alert whose condition was not found is
marked absent, cleared after ``clear_days`` and closed once cleared *and*
acknowledged or resolved (``fleet.store.alerts``). Each alert names the site, the
position (rack/string), the module serial, the recommended action and the evidence
(the last ``evidence_days`` of the daily series the detector reads).
``dispatch_limits`` turns open critical alerts whose condition is present into the
configured dispatch policy (derate or exclude).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from fleet.store import alerts as alert_store
from fleet.store import assets as asset_store
from fleet.store.dml import transaction
from fleet.store.sites import load_site_configs
from fleet.store.telemetry_tables import tlm_measurements
from forecasting.health.anomaly import detect_anomalies
from forecasting.health.detectors import (
    UNIT_COLUMN,
    DetectorConfig,
    expected_soh,
    run_detectors,
)
from forecasting.health.features import daily_features
from forecasting.health.findings import FindingKind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from fleet.store.dml import Bind
    from forecasting.health.findings import Finding

logger = logging.getLogger(__name__)

DETECTOR_KINDS = frozenset(k.value for k in FindingKind)
"""Alert kinds owned by the health scan (it may close these)."""


class HealthPolicy(BaseModel):
    """What the scan looks at and what an open critical alert does to dispatch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_days: int = Field(default=35, ge=1, le=3650)
    """Most days of raw telemetry a scan reads (the first scan of a site reads them
    all; later ones start at the last stored feature day)."""
    recompute_days: int = Field(default=2, ge=1, le=35)
    """Days before ``now`` whose features are always recomputed (late samples)."""
    history_days: int = Field(default=3650, ge=30, le=36500)
    """Days of stored daily features the detectors see (baselines and the aging
    model start at the first of them)."""
    on_critical: Literal["none", "derate", "exclude"] = "derate"
    """Dispatch action for a site with an open critical alert."""
    derate_kinds: frozenset[str] = frozenset(DETECTOR_KINDS - {"telemetry_quality"})
    """Alert kinds whose critical alerts trigger ``on_critical``: the battery's own
    condition. Bad telemetry says nothing about the battery, so it does not derate."""
    derate_fraction: float = Field(default=0.5, gt=0.0, le=1.0)
    """Fraction (0-1) of rated power a derated site keeps."""
    anomaly_model: bool = False
    """Also run the IsolationForest detector (info-level findings)."""
    hold_days: int = Field(default=3, ge=1, le=30)
    """A condition found on any of the last ``hold_days`` days counts as present (an
    idle day gives no evidence either way)."""
    clear_days: int = Field(default=7, ge=1, le=365)
    """Days without the condition after which its alert is cleared; a cleared alert
    closes once acknowledged or resolved."""
    evidence_days: int = Field(default=30, ge=1, le=365)
    """Days of the detector's daily series stored with an alert as its evidence."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan of one site did."""

    site_id: str
    """Site scanned."""
    day: dt.date | None
    """Latest day with telemetry (None when there was none)."""
    findings: tuple[Finding, ...]
    """The latest finding per (device, kind) within the policy's hold window."""
    opened: tuple[int, ...]
    """Ids of alerts opened."""
    refreshed: tuple[int, ...]
    """Ids of open alerts found again (or still)."""
    closed: tuple[int, ...]
    """Ids of alerts closed (condition cleared, and acknowledged or resolved)."""


def read_telemetry(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    battery_only: bool = False,
) -> pd.DataFrame:
    """Return a site's stored measurements that health and passports use, in [since, until).

    ``dev_id`` keeps one device; ``battery_only`` keeps the devices that report cell
    voltages (battery devices with a BMS), with all their samples: a ``bad`` sample
    carries no measurement but counts for the telemetry-quality detector. Rows are
    ordered by device, then time.
    """
    m = tlm_measurements
    query = sa.select(
        m.c.site_id,
        m.c.dev_id,
        m.c.ts_ms,
        m.c.q,
        m.c.soc_pct,
        m.c.soh_pct,
        m.c.p_dc_w,
        m.c.cell_v_max_v,
        m.c.cell_v_min_v,
        m.c.cell_t_max_c,
    )
    where = [m.c.site_id == site_id]
    if dev_id is not None:
        where.append(m.c.dev_id == dev_id)
    if since is not None:
        where.append(m.c.ts_ms >= int(since.timestamp() * 1000))
    if until is not None:
        where.append(m.c.ts_ms < int(until.timestamp() * 1000))
    query = query.where(*where)
    if battery_only:
        batteries = (
            sa.select(m.c.dev_id)
            .where(*where, m.c.cell_v_max_v.is_not(None))
            .distinct()
        )
        query = query.where(m.c.dev_id.in_(batteries.scalar_subquery()))
    with transaction(bind) as conn:
        rows = conn.execute(query.order_by(m.c.dev_id, m.c.ts_ms)).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=[c.name for c in query.selected_columns]
    )


def read_battery_telemetry(
    bind: Bind, *, site_id: str, since: dt.datetime, until: dt.datetime
) -> pd.DataFrame:
    """Return the battery devices' measurements of a site in [since, until)."""
    return read_telemetry(
        bind, site_id=site_id, since=since, until=until, battery_only=True
    )


@dataclass(frozen=True, slots=True)
class UnitPeriod:
    """A registered unit's time behind one telemetry device of a site."""

    serial: str
    """Unit serial."""
    dev_id: str
    """Telemetry device."""
    position: str | None
    """Position in the site (rack/string)."""
    start: dt.datetime
    """Installed at, UTC."""
    end: dt.datetime | None
    """Removed at, UTC (None while installed)."""


def unit_periods(bind: Bind, site_id: str) -> list[UnitPeriod]:
    """Return the registry's unit periods at a site's telemetry devices, oldest first."""
    periods: list[UnitPeriod] = []
    for serial in asset_store.site_serials(bind, site_id):
        current: asset_store.AssetEvent | None = None
        for event in asset_store.events(bind, serial):
            if event.kind in {"install", "swap_in"}:
                current = event if event.site_id == site_id else None
            elif event.kind in {"remove", "swap_out"} and current is not None:
                if current.dev_id is not None:
                    periods.append(
                        UnitPeriod(
                            serial,
                            current.dev_id,
                            current.position,
                            current.ts,
                            event.ts,
                        )
                    )
                current = None
        if current is not None and current.dev_id is not None:
            periods.append(
                UnitPeriod(serial, current.dev_id, current.position, current.ts, None)
            )
    return sorted(periods, key=lambda p: (p.dev_id, p.start))


def assign_units(features: pd.DataFrame, periods: list[UnitPeriod]) -> pd.DataFrame:
    """Return a copy of the daily features with the unit (serial) behind each row.

    A device-day belongs to the unit installed at its noon (UTC); days no registered
    unit covers keep an empty unit (the device's own history).
    """
    out = features.copy()
    out[UNIT_COLUMN] = ""
    if out.empty or not periods:
        return out
    noon = pd.to_datetime(out["day"]).dt.tz_localize("UTC") + pd.Timedelta(hours=12)
    for period in periods:
        inside = (out["dev_id"] == period.dev_id) & (noon >= period.start)
        if period.end is not None:
            inside &= noon < period.end
        out.loc[inside, UNIT_COLUMN] = period.serial
    return out


def findings_for(
    features: pd.DataFrame,
    *,
    site_energy_mwh: float | None,
    config: DetectorConfig | None = None,
    anomaly_model: bool = False,
) -> list[Finding]:
    """Run every detector over one site's daily features (pure).

    ``site_energy_mwh`` (split evenly over the site's battery devices) enables the
    fade detector (or give a frame that has ``soh_model`` already).
    """
    if features.empty:
        return []
    devices = features["dev_id"].nunique()
    if UNIT_COLUMN not in features:
        features = features.assign(**{UNIT_COLUMN: ""})
    if site_energy_mwh is not None and features["soh"].notna().any():
        features = expected_soh(features, site_energy_mwh / devices, config=config)
    findings = run_detectors(features, config)
    if anomaly_model:
        findings.extend(detect_anomalies(features))
        findings.sort(key=lambda f: f.day)
    return findings


def update_daily_features(
    bind: Bind, site_id: str, *, now: dt.datetime, policy: HealthPolicy
) -> pd.DataFrame:
    """Store the daily features of new raw telemetry; return the site's feature history.

    Raw telemetry is read from the last stored feature day (or ``recompute_days``
    before ``now`` if earlier; at most ``lookback_days`` back) up to ``now``; its days
    are (re)computed and upserted into ``health_daily``. The history returned covers
    ``history_days`` up to the day of ``now`` (excluded when ``now`` is a midnight).
    """
    last = alert_store.last_feature_day(bind, site_id)
    first_day = (now - dt.timedelta(days=policy.lookback_days)).date()
    recompute_day = (now - dt.timedelta(days=policy.recompute_days)).date()
    start_day = first_day if last is None else max(first_day, min(last, recompute_day))
    since = dt.datetime.combine(start_day, dt.time(), dt.UTC)
    samples = read_battery_telemetry(bind, site_id=site_id, since=since, until=now)
    if not samples.empty:
        fresh = daily_features(samples)
        alert_store.save_daily_features(bind, fresh.to_dict("records"), now=now)
    rows = alert_store.load_daily_features(
        bind,
        site_id=site_id,
        since=(now - dt.timedelta(days=policy.history_days)).date(),
        # The raw read ends just before ``now``: its day is the last one seen.
        until=(now - dt.timedelta(milliseconds=1)).date() + dt.timedelta(days=1),
    )
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).drop(columns=["computed_at"])


def scan_site(
    bind: Bind,
    site_id: str,
    *,
    now: dt.datetime,
    site_energy_mwh: float | None = None,
    policy: HealthPolicy | None = None,
    config: DetectorConfig | None = None,
) -> ScanResult:
    """Scan one site's recent telemetry and keep its alerts current.

    Parameters
    ----------
    bind
        Engine or connection of a migrated store.
    site_id
        Site to scan.
    now
        End of the scanned window (aware).
    site_energy_mwh
        The site's battery energy [MWh]; enables the fade detector.
    policy
        Look-back and anomaly options.
    config
        Detector thresholds.

    Returns
    -------
    ScanResult
        The latest day's findings and the alerts opened, refreshed and closed.
    """
    policy = policy or HealthPolicy()
    features = update_daily_features(bind, site_id, now=now, policy=policy)
    if features.empty:
        logger.info("health scan %s: no battery telemetry before %s", site_id, now)
        return ScanResult(site_id, None, (), (), (), ())
    periods = unit_periods(bind, site_id)
    features = assign_units(features, periods)
    if site_energy_mwh is not None and features["soh"].notna().any():
        per_device_mwh = site_energy_mwh / features["dev_id"].nunique()
        features = expected_soh(features, per_device_mwh, config=config)
    findings = findings_for(
        features,
        site_energy_mwh=None,
        config=config,
        anomaly_model=policy.anomaly_model,
    )
    last_day = max(features["day"])
    window_start = last_day - dt.timedelta(days=policy.hold_days - 1)
    latest: dict[tuple[str, str, str, str], Finding] = {}
    for finding in findings:
        if finding.day >= window_start:
            serial = str(finding.detail.get("serial", ""))
            latest[(*finding.key, serial)] = finding  # findings are sorted by day
    current = list(latest.values())
    where = {(p.dev_id, p.serial): p.position for p in periods}
    details = [
        {
            **f.as_detail(),
            "site_id": site_id,
            "position": where.get((f.dev_id, str(f.detail.get("serial", "")))),
            "serials": [f.detail["serial"]] if f.detail.get("serial") else [],
            "evidence": evidence(features, f, days=policy.evidence_days),
        }
        for f in current
    ]
    return _apply(bind, site_id, last_day, current, details, now, policy)


EVIDENCE_COLUMNS: dict[str, tuple[str, ...]] = {
    FindingKind.IMBALANCE.value: ("spread_mid_soc_mv",),
    FindingKind.THERMAL.value: ("temp_at_power_c", "peer_median_c"),
    FindingKind.FAST_FADE.value: ("soh", "soh_model"),
    FindingKind.RTE_SLIDE.value: ("rte",),
    FindingKind.TELEMETRY_QUALITY.value: ("bad_fraction", "gap_fraction"),
    FindingKind.ANOMALY.value: ("temp_at_power_c", "spread_mid_soc_mv", "rte"),
}
"""Daily series stored as an alert's evidence, by alert kind."""


def evidence(features: pd.DataFrame, finding: Finding, *, days: int) -> dict[str, Any]:
    """Return the last ``days`` of the daily series behind a finding (JSON-ready).

    ``{"days": [...], "series": {column: [...]}, "threshold": …, "statistic": …}``;
    ``peer_median_c`` is the median over the site's devices that day.
    """
    frame = features
    if "peer_median_c" not in frame and "temp_at_power_c" in frame:
        frame = frame.assign(
            peer_median_c=frame.groupby("day")["temp_at_power_c"].transform("median")
        )
    rows = frame[(frame["dev_id"] == finding.dev_id) & (frame["day"] <= finding.day)]
    serial = finding.detail.get("serial")
    if serial and UNIT_COLUMN in rows:
        rows = rows[rows[UNIT_COLUMN] == serial]
    rows = rows.sort_values("day").tail(days)
    series: dict[str, list[float | None]] = {}
    for column in EVIDENCE_COLUMNS.get(finding.kind.value, ()):
        if column in rows:
            series[column] = [
                None if pd.isna(v) else round(float(v), 6) for v in rows[column]
            ]
    return {
        "statistic": finding.statistic,
        "threshold": round(finding.threshold, 6),
        "days": [d.isoformat() for d in rows["day"]],
        "series": series,
    }


def _apply(
    bind: Bind,
    site_id: str,
    day: dt.date,
    current: list[Finding],
    details: list[dict[str, Any]],
    now: dt.datetime,
    policy: HealthPolicy,
) -> ScanResult:
    opened: list[int] = []
    refreshed: list[int] = []
    closed: list[int] = []
    with transaction(bind) as conn:
        seen: set[int] = set()
        for finding, detail in zip(current, details, strict=True):
            serial = detail.get("serial") or None
            alert_id, new = alert_store.raise_alert(
                conn,
                site_id=site_id,
                dev_id=finding.dev_id,
                kind=finding.kind.value,
                severity=finding.severity.value,
                detail=detail,
                now=now,
                day=finding.day,
                serial=serial,
            )
            (opened if new else refreshed).append(alert_id)
            seen.add(alert_id)
        for alert in alert_store.list_alerts(conn, site_id=site_id):
            if alert.kind not in DETECTOR_KINDS or alert.id in seen:
                continue
            if alert_store.mark_absent(
                conn, alert.id, day=day, now=now, clear_days=policy.clear_days
            ):
                closed.append(alert.id)
    logger.info(
        "health scan %s %s: %d findings, %d opened, %d closed",
        site_id,
        day,
        len(current),
        len(opened),
        len(closed),
    )
    return ScanResult(
        site_id, day, tuple(current), tuple(opened), tuple(refreshed), tuple(closed)
    )


def scan_fleet(
    bind: Bind,
    *,
    now: dt.datetime,
    site_ids: Iterable[str] | None = None,
    policy: HealthPolicy | None = None,
    config: DetectorConfig | None = None,
) -> list[ScanResult]:
    """Scan every stored site (or ``site_ids``), with energies from the site table."""
    energies = {
        str(c["id"]): float(c["battery"]["energy_mwh"]) for c in load_site_configs(bind)
    }
    wanted = sorted(site_ids) if site_ids is not None else sorted(energies)
    return [
        scan_site(
            bind,
            site_id,
            now=now,
            site_energy_mwh=energies.get(site_id),
            policy=policy,
            config=config,
        )
        for site_id in wanted
    ]


def dispatch_limits(
    bind: Bind, site_ids: Iterable[str], policy: HealthPolicy | None = None
) -> dict[str, float]:
    """Return the fraction (0-1) of rated power each site may dispatch.

    1 for a site without an open critical alert of ``derate_kinds`` whose condition
    is present (a
    cleared alert waiting for its acknowledgement does not count); with one,
    ``derate_fraction`` when ``on_critical`` is ``derate``, 0 (excluded) when
    ``exclude``, 1 when ``none``.
    """
    policy = policy or HealthPolicy()
    critical = alert_store.sites_with_open(bind, "critical", kinds=policy.derate_kinds)
    limit = {"none": 1.0, "derate": policy.derate_fraction, "exclude": 0.0}[
        policy.on_critical
    ]
    return {s: (limit if s in critical else 1.0) for s in site_ids}
