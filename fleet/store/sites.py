"""Save the fleet's sites (with their full configuration) and read them back."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from fleet.store.dml import Bind, transaction, upsert
from fleet.store.tables import sites


class SiteLike(Protocol):
    """What the store reads from ``fleet.domain.Site``."""

    @property
    def id(self) -> str:
        """Site id."""

    @property
    def name(self) -> str:
        """Display name."""

    @property
    def market(self) -> object:
        """Market (ISO) the site bids into."""

    @property
    def node(self) -> object:
        """Settlement point / pricing node."""

    @property
    def meter(self) -> object:
        """Metering configuration (front or behind the meter)."""

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]:
        """Return the site as JSON-ready data (pydantic)."""


class FleetLike(Protocol):
    """What the store reads from ``fleet.domain.Fleet``."""

    @property
    def sites(self) -> Sequence[SiteLike]:
        """The fleet's sites."""


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    return str(value)


def save_fleet(bind: Bind, fleet: FleetLike, *, now: dt.datetime | None = None) -> int:
    """Insert or update every site of ``fleet``; return the number of sites saved.

    Sites in the store but not in ``fleet`` are kept (their history refers to them).

    Parameters
    ----------
    bind
        Engine or connection.
    fleet
        A ``fleet.domain.Fleet``.
    now
        Time stamped as ``updated_at`` (aware); defaults to now, UTC.
    """
    stamp = now or dt.datetime.now(dt.UTC)
    rows = [
        {
            "id": str(site.id),
            "name": site.name,
            "market": _text(site.market),
            "node": _text(site.node),
            "meter": _text(site.meter),
            "config": site.model_dump(mode="json"),
            "updated_at": stamp,
        }
        for site in fleet.sites
    ]
    with transaction(bind) as conn:
        return upsert(conn, sites, rows, ["id"])


def load_site_configs(bind: Bind, *, market: str | None = None) -> list[dict[str, Any]]:
    """Return the stored site configurations (``Site.model_dump(mode="json")``) by id."""
    query = sa.select(sites.c.config).order_by(sites.c.id)
    if market is not None:
        query = query.where(sites.c.market == market)
    with transaction(bind) as conn:
        return [dict(row.config) for row in conn.execute(query)]
