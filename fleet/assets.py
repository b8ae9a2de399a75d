"""Serialized asset registry: import assets, record swaps, build a unit's passport.

A passport is what a second-life buyer asks for: the unit's identity and provenance,
where it was installed and when, its DC throughput and equivalent full cycles, its SoH
history, its latest cell-voltage spread, its critical alerts and its second-life
grade. Throughput, cycles and SoH come from the telemetry of the device the unit was
mapped to (``dev_id``) during each of its installation periods.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
import pycountry
import pydantic
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from fleet.errors import FleetInputError
from fleet.health import read_telemetry
from fleet.store import assets as asset_store
from fleet.store.alerts import list_alerts, load_daily_features
from fleet.store.dml import transaction
from fleet.store.telemetry_tables import tlm_site_sessions
from forecasting.health.features import daily_features
from forecasting.health.secondlife import Grade, grade_unit

if TYPE_CHECKING:
    from fleet.store.dml import Bind

logger = logging.getLogger(__name__)

MIN_FADE_FIT_DAYS = 30
"""Fewest days of SoH history before a fade trend is fitted."""

SERIAL_PATTERN = r"^[A-Z0-9][A-Z0-9._/-]{0,63}$"
"""A serial once normalized (trimmed, upper case): letters, digits, ``. _ / -``."""

UNKNOWN = "unknown"
"""What an asset file writes for an origin or FEOC status nobody knows."""

_SERIAL_RE = re.compile(SERIAL_PATTERN)
_FEOC_TEXT = {"true": True, "false": False, UNKNOWN: None}


def normalize_serial(value: str) -> str:
    """Return a serial trimmed and upper-cased.

    Raises
    ------
    FleetInputError
        When the result is not a valid serial (:data:`SERIAL_PATTERN`).
    """
    serial = value.strip().upper()
    if not _SERIAL_RE.match(serial):
        msg = (
            f"serial={value!r} must be 1-64 letters, digits, '.', '_', '/' or '-' "
            "(case and surrounding spaces are ignored)"
        )
        raise FleetInputError(msg)
    return serial


def parse_feoc(value: object) -> bool | None:
    """Read a FEOC flag: true, false or ``unknown`` (None); nothing else.

    Raises
    ------
    ValueError
        When ``value`` is anything else (``Y``, ``maybe``, ``1`` …).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _FEOC_TEXT:
        return _FEOC_TEXT[value.strip().lower()]
    msg = f"feoc={value!r} must be true, false or unknown"
    raise ValueError(msg)


def parse_country(value: object) -> str | None:
    """Read a country of manufacture: an ISO 3166-1 alpha-2 code or ``unknown`` (None).

    Raises
    ------
    ValueError
        When ``value`` is not an assigned ISO 3166-1 alpha-2 code (``XX``, ``USA``).
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == UNKNOWN:
            return None
        if len(text) == 2 and pycountry.countries.get(alpha_2=text.upper()):
            return text.upper()
    msg = (
        f"country_of_manufacture={value!r} must be an ISO 3166-1 alpha-2 country "
        "code such as US or CN, or unknown"
    )
    raise ValueError(msg)


class AssetIn(BaseModel):
    """One asset of an import file (CSV row, TOML ``[[asset]]`` or JSON object)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serial: str = Field(min_length=1, max_length=80)
    kind: Literal["cell", "module", "string", "rack", "pcs"]
    manufacturer: str = Field(min_length=1, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    country_of_manufacture: str | None
    """ISO 3166-1 alpha-2 code; ``unknown`` in the file is None."""
    feoc: bool | None
    """true, false, or ``unknown`` in the file (None: a compliance risk)."""
    energy_mwh: Annotated[float, Field(gt=0.0)] | None = None
    site_id: str | None = Field(default=None, max_length=64)
    position: str | None = Field(default=None, max_length=64)
    dev_id: str | None = Field(default=None, max_length=32)
    parent_serial: str | None = Field(default=None, max_length=64)
    installed_at: dt.datetime | None = None

    @pydantic.field_validator("serial", "parent_serial", mode="before")
    @classmethod
    def _serial(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return normalize_serial(value)
            except FleetInputError as exc:
                raise ValueError(str(exc)) from None
        return value

    @pydantic.field_validator("feoc", mode="before")
    @classmethod
    def _feoc(cls, value: object) -> bool | None:
        return parse_feoc(value)

    @pydantic.field_validator("country_of_manufacture", mode="before")
    @classmethod
    def _country(cls, value: object) -> str | None:
        return parse_country(value)

    @pydantic.field_validator("installed_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            msg = "installed_at must carry a timezone (e.g. 2026-01-01T00:00:00Z)"
            raise ValueError(msg)
        return value

    @pydantic.model_validator(mode="after")
    def _installed_needs_site(self) -> AssetIn:
        if self.installed_at is not None and self.site_id is None:
            msg = "installed_at is set but site_id is empty"
            raise ValueError(msg)
        return self


def read_asset_file(path: Path) -> list[AssetIn]:
    """Read assets from a ``.csv``, ``.toml`` (``[[asset]]``) or ``.json`` file.

    Raises
    ------
    FleetInputError
        When the file cannot be read, or naming the row and field of each bad value.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        msg = f"{path}: cannot read the asset file: {exc}"
        raise FleetInputError(msg) from None
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]]
    try:
        if suffix == ".csv":
            rows = [
                {k: (v if v != "" else None) for k, v in row.items() if k is not None}
                for row in csv.DictReader(text.splitlines())
            ]
        elif suffix == ".toml":
            rows = list(tomllib.loads(text).get("asset", []))
        elif suffix == ".json":
            loaded = json.loads(text)
            rows = list(
                loaded if isinstance(loaded, list) else loaded.get("assets", [])
            )
        else:
            msg = f"{path}: asset file must be .csv, .toml or .json"
            raise FleetInputError(msg)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: syntax error: {exc}"
        raise FleetInputError(msg) from None
    if not rows:
        msg = f"{path}: no assets found"
        raise FleetInputError(msg)
    problems: list[str] = []
    parsed: list[AssetIn] = []
    for i, row in enumerate(rows, start=1):
        try:
            parsed.append(AssetIn.model_validate(row))
        except pydantic.ValidationError as exc:
            for err in exc.errors():
                field = ".".join(str(p) for p in err["loc"]) or "row"
                text = str(err["msg"]).removeprefix("Value error, ")
                problems.append(
                    f"{path}: asset {i} ({row.get('serial')}): {field}: {text}"
                )
    serials = [a.serial for a in parsed]  # normalized: MOD-1 and " mod-1 " are one
    dupes = sorted({s for s in serials if serials.count(s) > 1})
    if dupes:
        problems.append(f"{path}: duplicate serial(s) {', '.join(dupes)}")
    if problems:
        raise FleetInputError("\n".join(problems))
    return parsed


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did to the registry."""

    new: int
    """Serials registered."""
    unchanged: int
    """Known serials whose facts and placement matched (nothing recorded)."""
    corrected: int
    """Known serials whose facts an explicit correction changed."""


def import_assets(
    bind: Bind,
    items: list[AssetIn],
    *,
    now: dt.datetime,
    actor: str,
    reason: str | None = None,
    correction: bool = False,
) -> ImportResult:
    """Save assets to the registry, all or nothing; every change is an event.

    A known serial with the same facts is left alone; with other facts it is
    refused unless ``correction`` (then a ``correct`` event records before and after,
    with ``reason``). See :func:`fleet.store.assets.save_asset`.

    Raises
    ------
    FleetInputError
        Listing every refused row (nothing is saved then).
    """
    counts = {"new": 0, "unchanged": 0, "corrected": 0}
    problems: list[str] = []
    with transaction(bind) as conn:
        for item in items:
            try:
                outcome = asset_store.save_asset(
                    conn,
                    item.model_dump(),
                    now=now,
                    actor=actor,
                    reason=reason,
                    correction=correction,
                )
            except FleetInputError as exc:
                problems.append(str(exc))
                continue
            counts[outcome] += 1
        if problems:
            msg = "nothing imported:\n" + "\n".join(problems)
            raise FleetInputError(msg)
    logger.info("imported %d assets by %s: %s", len(items), actor, counts)
    return ImportResult(**counts)


@dataclass(frozen=True, slots=True)
class Installation:
    """One period a unit spent at a site position."""

    site_id: str
    """Site."""
    position: str | None
    """Position in the site."""
    dev_id: str | None
    """Telemetry device."""
    start: dt.datetime
    """Installed at, UTC."""
    end: dt.datetime | None
    """Removed at, UTC (None while installed)."""


@dataclass(frozen=True, slots=True)
class Passport:
    """Everything a second-life buyer asks about one unit."""

    asset: asset_store.AssetRow
    """Identity and provenance."""
    installations: tuple[Installation, ...]
    """Where and when it served."""
    events: tuple[asset_store.AssetEvent, ...]
    """Its life events."""
    throughput_mwh: float
    """DC energy charged plus discharged while installed [MWh]."""
    efc: float | None
    """Equivalent full cycles: throughput / (2 · energy_mwh); None without energy."""
    soh_history: tuple[tuple[dt.date, float], ...]
    """(UTC day, median reported SoH, fraction 0-1)."""
    fade_per_year: float | None
    """Least-squares SoH slope, fraction of nameplate lost per year (positive)."""
    spread_mv: float | None
    """Latest daily mid-SoC cell-voltage spread [mV]."""
    critical_alerts: int
    """Critical alerts raised on its device while installed."""
    grade: Grade | None
    """Second-life grade (None without any SoH)."""

    def as_json(self) -> dict[str, Any]:
        """Return the passport as a JSON-ready document."""
        a = self.asset
        return {
            "serial": a.serial,
            "kind": a.kind,
            "manufacturer": a.manufacturer,
            "model": a.model,
            "country_of_manufacture": a.country_of_manufacture,
            "feoc": a.feoc,
            "energy_mwh": a.energy_mwh,
            "site_id": a.site_id,
            "position": a.position,
            "installations": [
                {
                    "site_id": i.site_id,
                    "position": i.position,
                    "dev_id": i.dev_id,
                    "start": i.start.isoformat(),
                    "end": i.end.isoformat() if i.end else None,
                }
                for i in self.installations
            ],
            "events": [e.as_json() for e in self.events],
            "throughput_mwh": round(self.throughput_mwh, 6),
            "efc": None if self.efc is None else round(self.efc, 4),
            "soh_latest": self.soh_history[-1][1] if self.soh_history else None,
            "soh_history": [[d.isoformat(), round(s, 5)] for d, s in self.soh_history],
            "fade_per_year": (
                None if self.fade_per_year is None else round(self.fade_per_year, 6)
            ),
            "spread_mv": None if self.spread_mv is None else round(self.spread_mv, 3),
            "critical_alerts": self.critical_alerts,
            "grade": None
            if self.grade is None
            else {
                "name": self.grade.name,
                "applications": list(self.grade.applications),
                "reasons": list(self.grade.reasons),
            },
        }


def installations(events: list[asset_store.AssetEvent]) -> list[Installation]:
    """Pair install/swap-in events with the following remove/swap-out events."""
    periods: list[Installation] = []
    current: asset_store.AssetEvent | None = None
    for event in events:
        if event.kind in {"install", "swap_in"} and event.site_id is not None:
            current = event
        elif event.kind in {"remove", "swap_out"} and current is not None:
            periods.append(_period(current, event.ts))
            current = None
    if current is not None:
        periods.append(_period(current, None))
    return periods


def _period(start: asset_store.AssetEvent, end: dt.datetime | None) -> Installation:
    return Installation(
        site_id=str(start.site_id),
        position=start.position,
        dev_id=start.dev_id,
        start=start.ts,
        end=end,
    )


def read_device_telemetry(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pd.DataFrame:
    """Return a device's stored measurements in [start, end) as a DataFrame."""
    return read_telemetry(bind, site_id=site_id, dev_id=dev_id, since=start, until=end)


def passport(bind: Bind, serial: str) -> Passport:
    """Build a unit's passport from the registry, its telemetry and its alerts.

    Raises
    ------
    FleetInputError
        When ``serial`` is not registered.
    """
    asset = asset_store.get_asset(bind, serial)
    history = asset_store.events(bind, serial)
    periods = installations(history)
    frames = [_period_daily(bind, p) for p in periods]
    frames = [f for f in frames if not f.empty]
    daily = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    throughput = (
        float((daily["energy_in_mwh"] + daily["energy_out_mwh"]).sum())
        if not daily.empty
        else 0.0
    )
    efc = throughput / (2.0 * asset.energy_mwh) if asset.energy_mwh else None
    soh_daily = (
        daily.dropna(subset=["soh"]).sort_values("day")[["day", "soh"]]
        if not daily.empty
        else pd.DataFrame(columns=["day", "soh"])
    )
    soh_history = tuple(
        (d, float(s)) for d, s in zip(soh_daily["day"], soh_daily["soh"], strict=True)
    )
    fade = _fade_per_year(soh_history)
    spreads = daily.dropna(subset=["spread_mid_soc_mv"]) if not daily.empty else daily
    spread = (
        float(spreads.sort_values("day")["spread_mid_soc_mv"].iloc[-1])
        if not spreads.empty
        else None
    )
    critical = _critical_alerts(bind, periods)
    grade = (
        grade_unit(
            soh=min(max(soh_history[-1][1], 0.0), 1.0),
            fade_per_year=fade,
            spread_mv=spread,
            efc=efc or 0.0,
            critical_alerts=critical,
        )
        if soh_history
        else None
    )
    return Passport(
        asset=asset,
        installations=tuple(periods),
        events=tuple(history),
        throughput_mwh=throughput,
        efc=efc,
        soh_history=soh_history,
        fade_per_year=fade,
        spread_mv=spread,
        critical_alerts=critical,
        grade=grade,
    )


def _period_daily(bind: Bind, period: Installation) -> pd.DataFrame:
    """Return an installation's daily features (raw telemetry, else stored days)."""
    if period.dev_id is None:
        return pd.DataFrame()
    raw = read_device_telemetry(
        bind,
        site_id=period.site_id,
        dev_id=period.dev_id,
        start=period.start,
        end=period.end,
    )
    daily = daily_features(raw) if not raw.empty else pd.DataFrame()
    seen = set(daily["day"]) if not daily.empty else set()
    first_full = period.start.date() + dt.timedelta(
        days=0 if period.start.time() == dt.time() else 1
    )
    stored = [
        row
        for row in load_daily_features(
            bind,
            site_id=period.site_id,
            dev_id=period.dev_id,
            since=first_full,
            until=period.end.date() if period.end is not None else None,
        )
        if row["day"] not in seen
    ]
    if not stored:
        return daily
    older = pd.DataFrame(stored).drop(columns=["computed_at"])
    return pd.concat([older, daily], ignore_index=True) if seen else older


def _fade_per_year(history: tuple[tuple[dt.date, float], ...]) -> float | None:
    if len(history) < 2:
        return None
    days = np.array([(d - history[0][0]).days for d, _ in history], dtype=float)
    if days[-1] < MIN_FADE_FIT_DAYS:
        return None
    soh = np.array([s for _, s in history])
    slope_per_day = float(np.polyfit(days, soh, 1)[0])
    return -slope_per_day * 365.25


def _critical_alerts(bind: Bind, periods: list[Installation]) -> int:
    count = 0
    for period in periods:
        for alert in list_alerts(bind, site_id=period.site_id, open_only=False):
            inside = alert.opened_at >= period.start and (
                period.end is None or alert.opened_at < period.end
            )
            if (
                alert.severity == "critical"
                and alert.dev_id == period.dev_id
                and inside
            ):
                count += 1
    return count


@dataclass(frozen=True, slots=True)
class BirthCheck:
    """The registry's installed devices of a site against its gateway's birth list."""

    site_id: str
    """Site."""
    birth_devices: tuple[str, ...]
    """Devices the latest birth message lists (empty when no birth was stored)."""
    registered_devices: tuple[str, ...]
    """Telemetry devices of the assets installed at the site."""
    missing_from_birth: tuple[str, ...]
    """Registered as installed but not reported by the gateway."""
    unregistered: tuple[str, ...]
    """Reported by the gateway but with no installed asset in the registry."""

    @property
    def consistent(self) -> bool:
        """True when both lists agree."""
        return not self.missing_from_birth and not self.unregistered


def birth_check(bind: Bind, site_id: str) -> BirthCheck:
    """Compare the installed assets' devices with the site's latest birth device list."""
    with transaction(bind) as conn:
        row = conn.execute(
            sa.select(tlm_site_sessions.c.birth).where(
                tlm_site_sessions.c.site_id == site_id
            )
        ).first()
    birth = dict(row.birth) if row is not None and row.birth else {}
    reported = sorted({str(d) for d in birth.get("devices", [])})
    installed = sorted(
        {
            a.dev_id
            for a in asset_store.list_assets(bind, site_id=site_id)
            if a.dev_id is not None and a.removed_at is None
        }
    )
    return BirthCheck(
        site_id=site_id,
        birth_devices=tuple(reported),
        registered_devices=tuple(installed),
        missing_from_birth=tuple(d for d in installed if d not in reported),
        unregistered=tuple(d for d in reported if d not in installed),
    )
