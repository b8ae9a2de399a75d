"""Store bid sets (accepted or refused, per market and operating day) and awards."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from fleet.errors import FleetInputError
from fleet.store import audit
from fleet.store.dml import Bind, transaction, upsert
from fleet.store.tables import BID_SET_STATUSES, PRICE_UNITS, awards, bid_sets

logger = logging.getLogger(__name__)

AWARD_COLUMNS = (
    "market",
    "operating_day",
    "version",
    "site_id",
    "ts",
    "product",
    "award_mw",
    "price",
    "unit",
)
AWARD_KEY = ("market", "operating_day", "version", "site_id", "ts", "product")


class BidVersionExistsError(FleetInputError):
    """A bid set with this market, operating day and version is already stored."""


@dataclass(frozen=True, slots=True)
class StoredBidSet:
    """One bid set as pushed by a scheduler."""

    id: int
    """Row id."""
    market: str
    """Market the bids are for."""
    operating_day: dt.date
    """Operating (trade) day."""
    version: int
    """Schedule/bid version the push referred to."""
    status: str
    """``accepted`` or ``refused``."""
    submitted_by: str
    """API key id of the submitter."""
    created_at: dt.datetime
    """When it was pushed, UTC."""
    payload: dict[str, Any]
    """The bid set as submitted (JSON)."""
    refusal_reason: str | None
    """Why it was refused (None when accepted)."""


def save_bid_set(
    bind: Bind,
    *,
    market: str,
    operating_day: dt.date,
    version: int,
    status: str,
    submitted_by: str,
    payload: dict[str, Any],
    refusal_reason: str | None = None,
    created_at: dt.datetime | None = None,
) -> StoredBidSet:
    """Record a pushed bid set (accepted or refused) and audit it; return it.

    Raises
    ------
    ValueError
        When ``status`` is unknown or a refusal has no reason.
    BidVersionExistsError
        When the market and day already have a bid set of this ``version``
        (accepted or refused: a version is stored once; a unique index backs it).
    """
    if status not in BID_SET_STATUSES:
        msg = f"bid set status={status!r} must be one of {BID_SET_STATUSES}"
        raise ValueError(msg)
    if status == "refused" and not refusal_reason:
        msg = "a refused bid set needs a refusal_reason"
        raise ValueError(msg)
    values: dict[str, Any] = {
        "market": market,
        "operating_day": operating_day,
        "version": version,
        "status": status,
        "submitted_by": submitted_by,
        "payload": payload,
        "refusal_reason": refusal_reason,
        "created_at": created_at or dt.datetime.now(dt.UTC),
    }
    taken = sa.select(bid_sets.c.id).where(
        bid_sets.c.market == market,
        bid_sets.c.operating_day == operating_day,
        bid_sets.c.version == version,
    )
    exists = (
        f"bid set {market} {operating_day} version={version} is already stored "
        "({status}); a version is stored once: push it as a new version"
    )
    with transaction(bind) as conn:
        prior = conn.execute(taken.add_columns(bid_sets.c.status)).first()
        if prior is not None:
            raise BidVersionExistsError(exists.format(status=prior.status))
        try:
            bid_set_id = conn.execute(
                sa.insert(bid_sets).values(**values).returning(bid_sets.c.id)
            ).scalar_one()
        except sa.exc.IntegrityError:
            # Another writer stored the same version in between (unique index).
            raise BidVersionExistsError(
                exists.format(status="by another push")
            ) from None
        audit.record(
            conn,
            actor=submitted_by,
            action=f"bids.{status}",
            object_type="bid_set",
            object_id=str(bid_set_id),
            detail={
                "market": market,
                "operating_day": operating_day.isoformat(),
                "version": version,
                "refusal_reason": refusal_reason,
            },
        )
    return StoredBidSet(id=int(bid_set_id), **values)


def latest_accepted_bid_set(
    bind: Bind, *, market: str, operating_day: dt.date
) -> StoredBidSet | None:
    """Return the newest accepted bid set for the market and day, or None."""
    query = (
        sa.select(bid_sets)
        .where(
            bid_sets.c.market == market,
            bid_sets.c.operating_day == operating_day,
            bid_sets.c.status == "accepted",
        )
        .order_by(bid_sets.c.version.desc(), bid_sets.c.id.desc())
        .limit(1)
    )
    with transaction(bind) as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredBidSet(**row._mapping)


def get_bid_set(
    bind: Bind, *, market: str, operating_day: dt.date, version: int
) -> StoredBidSet | None:
    """Return the bid set of a market, day and version, or None.

    A version is stored once; databases from before revision 0011 may hold refused
    pushes sharing a version with an accepted one: the accepted one wins.
    """
    query = (
        sa.select(bid_sets)
        .where(
            bid_sets.c.market == market,
            bid_sets.c.operating_day == operating_day,
            bid_sets.c.version == version,
        )
        .order_by((bid_sets.c.status == "accepted").desc(), bid_sets.c.id.desc())
        .limit(1)
    )
    with transaction(bind) as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredBidSet(**row._mapping)


def save_awards(
    bind: Bind, frame: pd.DataFrame, *, received_at: dt.datetime | None = None
) -> int:
    """Insert or update awards (fixed commitments) in bulk; return the rows written.

    Parameters
    ----------
    bind
        Engine or connection.
    frame
        Columns ``market, operating_day`` (date), ``version``, ``site_id``, ``ts``
        (aware, interval start), ``product``, ``award_mw`` [MW], ``price`` (in
        ``unit``) and ``unit`` (``usd_per_mwh`` or ``usd_per_mw``).
    received_at
        Defaults to now, UTC.
    """
    missing = [c for c in AWARD_COLUMNS if c not in frame.columns]
    if missing:
        msg = f"awards frame lacks column(s) {missing}; expected {list(AWARD_COLUMNS)}"
        raise ValueError(msg)
    if frame.empty:
        return 0
    ts = pd.DatetimeIndex(frame["ts"])
    if ts.tz is None:
        msg = "awards frame column 'ts' must be timezone-aware (UTC)"
        raise ValueError(msg)
    bad_units = sorted(set(frame["unit"].unique()) - set(PRICE_UNITS))
    if bad_units:
        msg = (
            f"awards frame column 'unit' has {bad_units}; expected one of {PRICE_UNITS}"
        )
        raise ValueError(msg)
    data = frame[list(AWARD_COLUMNS)].assign(ts=ts.tz_convert("UTC").to_pydatetime())
    data = data.astype(object).where(data.notna(), None)
    stamp = received_at or dt.datetime.now(dt.UTC)
    rows = [
        {**dict(zip(AWARD_COLUMNS, row, strict=True)), "received_at": stamp}
        for row in data.itertuples(index=False)
    ]
    with transaction(bind) as conn:
        return upsert(conn, awards, rows, AWARD_KEY)


def delete_awards(
    bind: Bind, *, market: str, operating_day: dt.date, version: int
) -> int:
    """Delete the awards of one bid version of a market and day; return the rows."""
    query = sa.delete(awards).where(
        awards.c.market == market,
        awards.c.operating_day == operating_day,
        awards.c.version == version,
    )
    with transaction(bind) as conn:
        return int(conn.execute(query).rowcount or 0)


def load_awards(
    bind: Bind, *, market: str, operating_day: dt.date, version: int | None = None
) -> pd.DataFrame:
    """Return the awards for a market and day (all versions unless ``version``)."""
    query = (
        sa.select(awards)
        .where(awards.c.market == market, awards.c.operating_day == operating_day)
        .order_by(awards.c.version, awards.c.site_id, awards.c.ts, awards.c.product)
    )
    if version is not None:
        query = query.where(awards.c.version == version)
    with transaction(bind) as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame([r._mapping for r in rows], columns=[c.name for c in awards.c])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame
