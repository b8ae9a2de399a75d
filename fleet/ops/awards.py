"""Awards: read pushed award sets, store them, and turn them into fixed commitments."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dispatch.bids import BidSet
from dispatch.markets import MarketRules
from dispatch.scenario import Commitments
from fleet.errors import FleetInputError
from fleet.ops.scenario_builder import operating_day_start
from fleet.store.bids import load_awards, save_awards
from fleet.store.dml import Bind

logger = logging.getLogger(__name__)

AWARD_PRODUCTS = ("energy", "reg_up", "reg_down", "spin")
"""Products an award may be for (``capacity`` awards are not dispatched)."""


class AwardIn(BaseModel):
    """One awarded quantity: site, interval start, product, MW and clearing price."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site_id: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime
    product: Literal["energy", "reg_up", "reg_down", "spin"]
    award_mw: float = Field(ge=-10000, le=10000)
    price: float | None = Field(default=None, ge=-10000, le=100000)
    unit: Literal["usd_per_mwh", "usd_per_mw"]


class AwardSetIn(BaseModel):
    """An award file: the bid version it answers and its awards (API layout)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    awards: list[AwardIn] = Field(min_length=1, max_length=20000)


def read_award_file(path: Path) -> AwardSetIn:
    """Read and validate an award JSON file.

    Raises
    ------
    FleetFileError
        Naming the file and the first bad field.
    """
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{path}: award file not found"
        raise FleetInputError(msg) from None
    except json.JSONDecodeError as exc:
        msg = (
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise FleetInputError(msg) from None
    try:
        return AwardSetIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = f"{path}: {loc}: {err['msg']}"
        raise FleetInputError(msg) from None


def check_awards(
    award_set: AwardSetIn,
    rules: MarketRules,
    operating_day: dt.date,
    site_ids: Sequence[str],
) -> None:
    """Refuse awards outside the operating day, for unknown sites, or duplicated.

    Raises
    ------
    FleetInputError
        Naming the award index and field.
    """
    start = operating_day_start(rules, operating_day)
    end = operating_day_start(rules, operating_day + dt.timedelta(days=1))
    known = set(site_ids)
    seen: set[tuple[str, dt.datetime, str]] = set()
    for i, award in enumerate(award_set.awards):
        if award.site_id not in known:
            msg = f"awards[{i}].site_id={award.site_id!r} is not a {rules.name} site of the fleet"
            raise FleetInputError(msg)
        ts = award.ts.astimezone(dt.UTC)
        if not start <= ts < end:
            msg = (
                f"awards[{i}].ts={award.ts.isoformat()} is outside operating day "
                f"{operating_day} ({rules.timezone})"
            )
            raise FleetInputError(msg)
        key = (award.site_id, ts, award.product)
        if key in seen:
            msg = f"awards[{i}]: duplicate site_id/ts/product {award.site_id}/{ts}/{award.product}"
            raise FleetInputError(msg)
        seen.add(key)


def store_awards(
    bind: Bind, award_set: AwardSetIn, rules: MarketRules, operating_day: dt.date
) -> int:
    """Save an award set (after :func:`check_awards`); return the rows written."""
    frame = pd.DataFrame(
        [
            {
                "market": rules.name,
                "operating_day": operating_day,
                "version": award_set.version,
                "site_id": a.site_id,
                "ts": a.ts.astimezone(dt.UTC),
                "product": a.product,
                "award_mw": a.award_mw,
                "price": a.price,
                "unit": a.unit,
            }
            for a in award_set.awards
        ]
    )
    return save_awards(bind, frame)


def awards_from_bids(
    bid_set: BidSet, rules: MarketRules, prices: Mapping[str, Sequence[float]]
) -> AwardSetIn:
    """Clear a bid set at given energy prices (a simulated market, for tests and demos).

    Parameters
    ----------
    bid_set
        The bids.
    rules
        The market.
    prices
        Per site: the clearing energy price of each hour [$/MWh]. The awarded MW is
        the curve's MW at that price (step reading: the last point at or below the
        price, the first point below all). Every AS offer is awarded in full.

    Returns
    -------
    AwardSetIn
        Version 1, one award per bid.
    """
    start = operating_day_start(rules, bid_set.operating_day)
    awards = []
    for bid in bid_set.bids:
        ts = start + dt.timedelta(hours=bid.hour_ending - 1)
        if bid.product == "energy":
            price = prices[bid.site_id][bid.hour_ending - 1]
            below = [mw for mw, p in bid.curve if p <= price]
            mw = below[-1] if below else bid.curve[0][0]
            unit: Literal["usd_per_mwh", "usd_per_mw"] = "usd_per_mwh"
        else:
            mw = float(sum(q for q, _ in bid.curve))
            unit = "usd_per_mw"
        awards.append(
            AwardIn.model_validate(
                {
                    "site_id": bid.site_id,
                    "ts": ts,
                    "product": bid.product,
                    "award_mw": mw,
                    "unit": unit,
                }
            )
        )
    return AwardSetIn(version=1, awards=awards)


def commitments_from_awards(
    awards: pd.DataFrame | Sequence[AwardIn],
    *,
    start: dt.datetime,
    interval_minutes: float,
    intervals: int,
    award_minutes: float = 60.0,
) -> dict[str, Commitments]:
    """Turn awards into per-site commitments on a scenario's interval grid.

    Parameters
    ----------
    awards
        Stored awards (columns ``site_id, ts, product, award_mw``) or parsed ones.
    start, interval_minutes, intervals
        The scenario's grid (aware start).
    award_minutes
        Length of an award's interval (60 for an hourly day-ahead market) [minutes].

    Returns
    -------
    dict
        Per site: ``net_mw`` fixed where an energy award covers the interval (None
        elsewhere) and AS lower bounds (0 where nothing is awarded).
    """
    if isinstance(awards, pd.DataFrame):
        rows = [
            (
                str(r.site_id),
                pd.Timestamp(r.ts).to_pydatetime(),
                str(r.product),
                float(r.award_mw),
            )
            for r in awards.itertuples(index=False)
        ]
    else:
        rows = [(a.site_id, a.ts, a.product, a.award_mw) for a in awards]
    first = start.astimezone(dt.UTC)
    grid = [
        first + i * dt.timedelta(minutes=interval_minutes) for i in range(intervals)
    ]
    per_site: dict[str, dict[str, list[float | None]]] = {}
    for site_id, ts, product, mw in rows:
        if product not in AWARD_PRODUCTS:
            continue
        lo = ts.astimezone(dt.UTC)
        hi = lo + dt.timedelta(minutes=award_minutes)
        covered = [i for i, t in enumerate(grid) if lo <= t < hi]
        if not covered:
            continue
        entry = per_site.setdefault(
            site_id,
            {
                "net_mw": [None] * intervals,
                "reg_up_mw": [0.0] * intervals,
                "reg_down_mw": [0.0] * intervals,
                "spin_mw": [0.0] * intervals,
            },
        )
        key = "net_mw" if product == "energy" else f"{product}_mw"
        for i in covered:
            entry[key][i] = mw
    out: dict[str, Commitments] = {}
    for site_id, entry in per_site.items():
        net = entry["net_mw"]
        out[site_id] = Commitments(
            net_mw=net if any(v is not None for v in net) else None,
            reg_up_mw=[float(v or 0.0) for v in entry["reg_up_mw"]],
            reg_down_mw=[float(v or 0.0) for v in entry["reg_down_mw"]],
            spin_mw=[float(v or 0.0) for v in entry["spin_mw"]],
        )
    return out


def latest_awards(
    bind: Bind, rules: MarketRules, operating_day: dt.date
) -> pd.DataFrame:
    """Return the newest version's awards of the market and day (empty when none)."""
    frame = load_awards(bind, market=rules.name, operating_day=operating_day)
    if frame.empty:
        return frame
    newest = frame["version"].max()
    return frame[frame["version"] == newest].reset_index(drop=True)


def awards_payload(award_set: AwardSetIn) -> dict[str, Any]:
    """Return the award set as JSON (the API's ``AwardSetIn`` body)."""
    return award_set.model_dump(mode="json", exclude_none=True)
