"""Write an accepted bid set as the files a market operator uploads (docs/bids.md).

One folder per market, trade date and bid version, one sub-folder per resource, CSV
files named after the market's submissions, and a ``manifest.json`` with row counts and
SHA-256 hashes:

- ERCOT (``ercot-dam/1``): ``energy_bid_offer.csv`` (ESR energy bid/offer curve, ≤ 10
  points from charging to discharging), ``as_offer_up.csv`` (the linked upward AS offer,
  ≤ 5 blocks, one price column per service: REGUP, RRSPF, RRSFF, ECRS, ONNS),
  ``as_offer_down.csv`` (Reg-Down, separate) and ``cop.csv`` (status, HSL, LSL,
  hour-beginning planned SoC, MinSOC, MaxSOC and the AS responsibilities per hour).
- CAISO (``caiso-dam/1``): ``energy_bid.csv`` (2-11 points), ``as_bids.csv`` (one MW /
  price pair per product and hour) and ``ngr.csv`` (initial SoC, energy and power
  limits of the non-generator resource).

The tables are built by pure functions (:func:`market_tables`); only
:func:`export_bid_set` reads the store and :func:`write_tables` writes files.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispatch.bidcheck import rule_refusals
from dispatch.bids import (
    Bid,
    BidSet,
    PlanHour,
    linked_up_blocks,
    parse_bids,
    plan_hours,
    step_decimals,
)
from dispatch.errors import DispatchInputError
from dispatch.markets import MarketRules
from dispatch.result import Result
from dispatch.scenario import parse_scenario
from fleet.domain import Fleet
from fleet.errors import FleetInputError
from fleet.ops.scenario_builder import operating_day_start
from fleet.store.bids import get_bid_set, latest_accepted_bid_set
from fleet.store.dml import Bind
from fleet.store.schedules import latest_schedule

logger = logging.getLogger(__name__)

EXPORT_SCHEMA = "bessfleet-market-export/1"
"""Schema name written in every manifest."""

Row = dict[str, str]
Table = tuple[tuple[str, ...], list[Row]]
"""A file's columns and rows (every value already formatted as text)."""


@dataclass(frozen=True, slots=True)
class NgrLimits:
    """What CAISO's non-generator resource model needs of a site for the day."""

    initial_soc_mwh: float
    """Stored energy at the start of the trade date (the plan's) [MWh]."""
    min_soc_mwh: float
    """Lower energy limit (soc_min·E) [MWh]."""
    max_soc_mwh: float
    """Upper energy limit (soc_max·E) [MWh]."""
    pmin_mw: float
    """Minus the charge power [MW]."""
    pmax_mw: float
    """Discharge power [MW]."""


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One written file."""

    path: Path
    """Where it was written."""
    rows: int
    """Data rows (without the header)."""
    sha256: str
    """Hex SHA-256 of its bytes."""


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What :func:`export_bid_set` wrote."""

    folder: Path
    """The trade date's folder (``<out>/<MARKET>_<YYYYMMDD>_v<version>``)."""
    manifest: Path
    """Its ``manifest.json``."""
    files: tuple[ExportedFile, ...]
    """Every CSV file, ordered by resource and name."""


def _num(value: float, step: float) -> str:
    """Format ``value`` with the decimals of ``step`` (never ``-0.0``)."""
    return f"{value + 0.0:.{step_decimals(step)}f}"


def _hour_start(rules: MarketRules, trade_date: dt.date) -> Callable[[int], str]:
    start = operating_day_start(rules, trade_date)
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(rules.timezone)

    def at(hour_ending: int) -> str:
        local = (start + dt.timedelta(hours=hour_ending - 1)).astimezone(tz)
        return local.isoformat(timespec="minutes")

    return at


def _curve_columns(points: int) -> tuple[str, ...]:
    cols: list[str] = []
    for j in range(1, points + 1):
        cols += [f"MW{j}", f"Price{j}"]
    return tuple(cols)


def _check_bids(bid_set: BidSet, rules: MarketRules) -> None:
    """Refuse a bid set that breaks the market's curve rules (nothing is written)."""
    refusals = rule_refusals(bid_set.bids, None, rules)
    if refusals:
        first = refusals[0]
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        msg = (
            f"bid set {bid_set.market} {bid_set.operating_day} cannot be exported: "
            f"{first.rule}: {first.message}{more}"
        )
        raise FleetInputError(msg)


def _energy_rows(
    bids: Sequence[Bid],
    rules: MarketRules,
    head: Row,
    at: Callable[[int], str],
    id_column: str,
) -> Table:
    columns = (
        id_column,
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        *_curve_columns(rules.curve_max_points),
    )
    rows: list[Row] = []
    for bid in sorted(bids, key=lambda b: b.hour_ending):
        row = {**head, "HourEnding": str(bid.hour_ending)}
        row["IntervalStart"] = at(bid.hour_ending)
        for j in range(1, rules.curve_max_points + 1):
            mw, price = bid.curve[j - 1] if j <= len(bid.curve) else (None, None)
            row[f"MW{j}"] = "" if mw is None else _num(mw, rules.curve_mw_step)
            row[f"Price{j}"] = (
                "" if price is None else _num(price, rules.curve_price_step)
            )
        rows.append(row)
    return columns, rows


def _ercot_tables(
    bids: Sequence[Bid],
    rules: MarketRules,
    head: Row,
    at: Callable[[int], str],
    plan: Sequence[PlanHour],
    enrolled: Collection[str] | None = None,
) -> dict[str, Table]:
    by_product: dict[str, dict[int, Bid]] = defaultdict(dict)
    for bid in bids:
        by_product[bid.product][bid.hour_ending] = bid
    up = [p for p in rules.products if p.offer_group == "up" and p.modeled]
    down = [p for p in rules.products if p.offer_group == "down" and p.modeled]
    deploy = {p.name: rules.deploy_of(p.name) for p in up}
    column_of = {p.name: str(p.offer_column or p.code) for p in up}
    up_columns = rules.up_offer_columns
    down_columns = tuple(str(p.offer_column or p.code) for p in down)
    for p in up:
        if (p.offer_column or p.code) not in up_columns:
            msg = (
                f"market {rules.name}: products.{p.name}.offer_column="
                f"{p.offer_column!r} is not one of export.up_offer_columns {up_columns}"
            )
            raise FleetInputError(msg)
    hours = sorted({b.hour_ending for b in bids} | {h.hour_ending for h in plan})
    mw_step, price_step = rules.as_mw_step, rules.as_price_step
    tables: dict[str, Table] = {
        "energy_bid_offer.csv": _energy_rows(
            list(by_product["energy"].values()), rules, head, at, "ResourceName"
        )
    }
    base = ("ResourceName", "TradeDate", "HourEnding", "IntervalStart", "Block", "MW")
    for name, group, columns in (
        ("as_offer_up.csv", up, up_columns),
        ("as_offer_down.csv", down, down_columns),
    ):
        rows: list[Row] = []
        for hour in hours:
            blocks: list[tuple[float, dict[str, float]]] = []
            if group is up:
                blocks = [
                    (mw, {column_of[name]: v for name, v in prices.items()})
                    for mw, prices in linked_up_blocks(
                        up, by_product, hour, enrolled, deploy
                    )
                ]
            for p in [] if group is up else group:
                offer = by_product[p.name].get(hour)
                column = str(p.offer_column or p.code)
                if offer is not None:
                    blocks += [
                        (mw, {column: price}) for mw, price in offer.curve if mw > 0
                    ]
            if len(blocks) > rules.as_max_blocks:
                msg = (
                    f"resource {head['ResourceName']}, hour_ending {hour}: "
                    f"{len(blocks)} AS blocks in {name}; {rules.name} takes at most "
                    f"{rules.as_max_blocks}"
                )
                raise FleetInputError(msg)
            for k, (mw, prices) in enumerate(blocks, start=1):
                row = {
                    **head,
                    "HourEnding": str(hour),
                    "IntervalStart": at(hour),
                    "Block": str(k),
                    "MW": _num(mw, mw_step),
                }
                row.update(dict.fromkeys(columns, ""))
                for column, price in prices.items():
                    row[column] = _num(price, price_step)
                rows.append(row)
        tables[name] = ((*base, *columns), rows)
    product_of = {str(p.offer_column or p.code): p.name for p in (*up, *down)}
    cop_columns = (
        "ResourceName",
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        "Status",
        "HSL",
        "LSL",
        "HourBeginningPlannedSOC",
        "MinSOC",
        "MaxSOC",
        *up_columns,
        *down_columns,
    )
    cop: list[Row] = []
    for hour_plan in plan:
        row = {
            **head,
            "HourEnding": str(hour_plan.hour_ending),
            "IntervalStart": at(hour_plan.hour_ending),
            "Status": rules.status_online if hour_plan.online else rules.status_offline,
            "HSL": _num(hour_plan.hsl_mw, mw_step),
            "LSL": _num(hour_plan.lsl_mw, mw_step),
            "HourBeginningPlannedSOC": _num(hour_plan.soc_hb_mwh, mw_step),
            "MinSOC": _num(hour_plan.min_soc_mwh, mw_step),
            "MaxSOC": _num(hour_plan.max_soc_mwh, mw_step),
        }
        for column in (*up_columns, *down_columns):
            product = product_of.get(column)
            mw = hour_plan.reserves_mw.get(product, 0.0) if product else 0.0
            row[column] = _num(mw, mw_step)
        cop.append(row)
    tables["cop.csv"] = (cop_columns, cop)
    return tables


def _caiso_tables(
    bids: Sequence[Bid],
    rules: MarketRules,
    head: Row,
    at: Callable[[int], str],
    ngr: NgrLimits,
) -> dict[str, Table]:
    energy = [b for b in bids if b.product == "energy"]
    tables: dict[str, Table] = {
        "energy_bid.csv": _energy_rows(energy, rules, head, at, "ResourceID")
    }
    rows: list[Row] = []
    order = {p.name: i for i, p in enumerate(rules.products)}
    for bid in sorted(
        (b for b in bids if b.product != "energy"),
        key=lambda b: (b.hour_ending, order.get(b.product, 99)),
    ):
        if len(bid.curve) != 1:
            msg = (
                f"resource {head['ResourceID']}, hour_ending {bid.hour_ending}, "
                f"{bid.product}: {len(bid.curve)} blocks; {rules.name} takes one "
                "MW/price pair per product and hour"
            )
            raise FleetInputError(msg)
        mw, price = bid.curve[0]
        rows.append(
            {
                **head,
                "HourEnding": str(bid.hour_ending),
                "IntervalStart": at(bid.hour_ending),
                "Product": rules.product(bid.product).code,
                "MW": _num(mw, rules.as_mw_step),
                "Price": _num(price, rules.as_price_step),
            }
        )
    tables["as_bids.csv"] = (
        (
            "ResourceID",
            "TradeDate",
            "HourEnding",
            "IntervalStart",
            "Product",
            "MW",
            "Price",
        ),
        rows,
    )
    step = rules.as_mw_step
    tables["ngr.csv"] = (
        ("ResourceID", "TradeDate", "InitialSOC", "MinSOC", "MaxSOC", "PMin", "PMax"),
        [
            {
                **head,
                "InitialSOC": _num(ngr.initial_soc_mwh, step),
                "MinSOC": _num(ngr.min_soc_mwh, step),
                "MaxSOC": _num(ngr.max_soc_mwh, step),
                "PMin": _num(ngr.pmin_mw, step),
                "PMax": _num(ngr.pmax_mw, step),
            }
        ],
    )
    return tables


def market_tables(
    bid_set: BidSet,
    rules: MarketRules,
    resource_ids: Mapping[str, str],
    plan: Sequence[PlanHour],
    ngr: Mapping[str, NgrLimits] | None = None,
    enrolled: Mapping[str, Collection[str]] | None = None,
) -> dict[str, dict[str, Table]]:
    """Return the market's submission tables per resource (pure, nothing written).

    Parameters
    ----------
    bid_set
        The accepted bid set (MW and prices on the market's grid).
    rules
        The market: ``export_format``, point and block limits, steps, columns.
    resource_ids
        The market resource name of each site.
    plan
        The day's plan per site and hour (:func:`dispatch.bids.plan_hours`), for the
        ERCOT COP.
    ngr
        CAISO: the non-generator resource limits per site.
    enrolled
        ERCOT: the products each site is enrolled in; its linked upward blocks are
        offered to those of them it can sustain (None: the products it bid).

    Returns
    -------
    dict
        ``{resource_id: {file name: (columns, rows)}}``, resources sorted.

    Raises
    ------
    FleetInputError
        When a bid breaks the market's rules, a site has no resource id or no plan,
        or the market has no export format.
    """
    _check_bids(bid_set, rules)
    trade_date = bid_set.operating_day.isoformat()
    at = _hour_start(rules, bid_set.operating_day)
    by_site: dict[str, list[Bid]] = defaultdict(list)
    for bid in bid_set.bids:
        by_site[bid.site_id].append(bid)
    plan_by_site: dict[str, list[PlanHour]] = defaultdict(list)
    for hour in plan:
        plan_by_site[hour.site_id].append(hour)
    out: dict[str, dict[str, Table]] = {}
    for site_id in sorted(by_site):
        resource = resource_ids.get(site_id)
        if not resource:
            msg = f"site {site_id}: no resource_id in the fleet; the market needs one"
            raise FleetInputError(msg)
        bids = by_site[site_id]
        if rules.export_format == "ercot-dam/1":
            if not plan_by_site[site_id]:
                msg = f"site {site_id}: no planned SoC for the COP (no stored schedule)"
                raise FleetInputError(msg)
            head = {"ResourceName": resource, "TradeDate": trade_date}
            tables = _ercot_tables(
                bids,
                rules,
                head,
                at,
                plan_by_site[site_id],
                None if enrolled is None else enrolled.get(site_id),
            )
        elif rules.export_format == "caiso-dam/1":
            limits = (ngr or {}).get(site_id)
            if limits is None:
                msg = f"site {site_id}: no initial SoC for the NGR (no stored schedule)"
                raise FleetInputError(msg)
            head = {"ResourceID": resource, "TradeDate": trade_date}
            tables = _caiso_tables(bids, rules, head, at, limits)
        else:
            msg = (
                f"market {rules.name}: export.format={rules.export_format!r} is not "
                "one of ercot-dam/1, caiso-dam/1"
            )
            raise FleetInputError(msg)
        if resource in out:
            msg = f"resource_id {resource!r} is used by more than one site"
            raise FleetInputError(msg)
        out[resource] = tables
    return out


def _csv_bytes(table: Table) -> bytes:
    columns, rows = table
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def write_tables(
    tables: Mapping[str, Mapping[str, Table]],
    folder: Path,
    header: Mapping[str, Any],
) -> ExportResult:
    """Write the tables under ``folder/<resource>/`` and a ``manifest.json``.

    Raises
    ------
    FleetInputError
        When ``folder`` exists and is not empty (an export is never overwritten).
    """
    if folder.exists() and any(folder.iterdir()):
        msg = f"{folder}: already exists and is not empty; an export is not overwritten"
        raise FleetInputError(msg)
    files: list[ExportedFile] = []
    resources: list[dict[str, Any]] = []
    for resource, named in tables.items():
        entry: dict[str, Any] = {"resource_id": resource, "files": {}}
        for name, table in sorted(named.items()):
            data = _csv_bytes(table)
            path = folder / resource / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            files.append(ExportedFile(path, len(table[1]), digest))
            entry["files"][name] = {"rows": len(table[1]), "sha256": digest}
        resources.append(entry)
    manifest = folder / "manifest.json"
    manifest.write_text(
        json.dumps({**header, "resources": resources}, indent=1, sort_keys=False) + "\n"
    )
    return ExportResult(folder, manifest, tuple(files))


def export_bid_set(
    bind: Bind,
    fleet: Fleet,
    rules: MarketRules,
    operating_day: dt.date,
    out_dir: Path,
    *,
    version: int | None = None,
) -> ExportResult:
    """Export an accepted bid set (newest, or ``version``) with the day's plan.

    The COP (ERCOT) and the NGR limits (CAISO) come from the newest stored schedule
    of the day.

    Raises
    ------
    FleetInputError
        When there is no accepted bid set (of that version) or no stored schedule,
        or the bid set cannot be exported (see :func:`market_tables`).
    """
    if version is None:
        stored = latest_accepted_bid_set(
            bind, market=rules.name, operating_day=operating_day
        )
    else:
        stored = get_bid_set(
            bind, market=rules.name, operating_day=operating_day, version=version
        )
    which = "" if version is None else f" version={version}"
    if stored is None or stored.status != "accepted":
        msg = f"no accepted {rules.name} bid set{which} for {operating_day}"
        raise FleetInputError(msg)
    schedule = latest_schedule(bind, market=rules.name, operating_day=operating_day)
    if schedule is None or not schedule.scenario or not schedule.result:
        msg = (
            f"no stored {rules.name} schedule for {operating_day}: the export needs "
            "the planned SoC (run `bessfleet dayahead run` first)"
        )
        raise FleetInputError(msg)
    try:
        scn = parse_scenario(schedule.scenario)
        result = Result.model_validate(schedule.result)
        plan = plan_hours(scn, result, rules)
        bid_set = BidSet(
            market=rules.name,
            operating_day=operating_day,
            bids=parse_bids(stored.payload),
        )
    except DispatchInputError as exc:
        raise FleetInputError(str(exc)) from None
    ngr = {
        s.id: NgrLimits(
            initial_soc_mwh=s.energy_mwh * s.soc_initial,
            min_soc_mwh=s.energy_mwh * s.soc_min,
            max_soc_mwh=s.energy_mwh * s.soc_max,
            pmin_mw=-s.charge_mw,
            pmax_mw=s.discharge_mw,
        )
        for s in scn.sites
    }
    ids = {str(s.id): s.resource_id or "" for s in fleet.sites}
    enrolled = {
        s.id: {r.name for r in scn.reserves if s.enrolled(r.name)} for s in scn.sites
    }
    tables = market_tables(bid_set, rules, ids, plan, ngr, enrolled)
    folder = out_dir / f"{rules.name}_{operating_day:%Y%m%d}_v{stored.version}"
    header = {
        "schema": EXPORT_SCHEMA,
        "format": rules.export_format,
        "market": rules.name,
        "trade_date": operating_day.isoformat(),
        "timezone": rules.timezone,
        "bid_version": stored.version,
        "plan_version": schedule.version,
        "note": stored.payload.get("note"),
    }
    written = write_tables(tables, folder, header)
    logger.info(
        "exported %s %s v%d: %d files for %d resources to %s",
        rules.name,
        operating_day,
        stored.version,
        len(written.files),
        len(tables),
        folder,
    )
    return written
