"""Declare the store's tables (SQLAlchemy Core) on one shared MetaData.

Conventions
-----------
- Timestamps are timezone-aware UTC (:class:`UtcDateTime`); telemetry tables (in
  ``telemetry_tables.py``) use integer epoch milliseconds instead.
- Physical columns carry their unit in the name (``charge_mw``, ``objective_usd``);
  price columns that hold either $/MWh or $/MW-h carry a ``unit`` column instead.
- Fractions (``soc``) are 0-1.
- ``site_id`` columns deliberately have no foreign key to ``sites``: sites come and go
  with the fleet file, their history (schedules, awards, setpoints, alerts) stays.
- Every table here is created by a hand-written Alembic migration in
  ``migrations/versions``; ``tests/fleet/test_migrations.py`` checks they match.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: JSON document: ``JSONB`` on PostgreSQL, JSON text on SQLite.
JsonDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: Surrogate key: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PRICE_UNITS = ("usd_per_mwh", "usd_per_mw")
API_KEY_ROLES = ("viewer", "scheduler", "admin")
BID_SET_STATUSES = ("accepted", "refused")
SETPOINT_STATUSES = ("sent", "accepted", "applied", "rejected", "expired")
ALERT_SEVERITIES = ("info", "warning", "critical")


class UtcDateTime(sa.TypeDecorator[dt.datetime]):
    """``DateTime(timezone=True)`` that only takes aware datetimes and returns UTC.

    SQLite keeps no offset, so values are converted to UTC before they are stored and
    naive values read back are marked UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC."""
        if value is None or value.tzinfo is dt.UTC:
            return value
        if value.tzinfo is None or value.utcoffset() is None:
            msg = f"naive datetime {value!r}: the store takes timezone-aware UTC times"
            raise ValueError(msg)
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: sa.Dialect
    ) -> dt.datetime | None:
        """Return an aware UTC datetime (SQLite hands back naive UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    @property
    def python_type(self) -> type[Any]:
        """Return :class:`datetime.datetime`."""
        return dt.datetime


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("market", sa.String(32), nullable=False),
    sa.Column("node", sa.String(64), nullable=True),
    sa.Column("meter", sa.String(32), nullable=True),
    sa.Column("config", JsonDoc, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

prices = sa.Table(
    "prices",
    metadata,
    sa.Column("market", sa.String(32), primary_key=True),
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("product", sa.String(32), primary_key=True),
    sa.Column("ts", UtcDateTime(), primary_key=True, comment="interval start, UTC"),
    sa.Column("interval_minutes", sa.Integer(), nullable=False),
    sa.Column("price", sa.Float(), nullable=False, comment="in `unit`"),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("source", sa.String(300), nullable=True),
    sa.Column("imported_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("unit", PRICE_UNITS), name="unit"),
    sa.CheckConstraint("interval_minutes > 0", name="interval_minutes"),
)

price_forecasts = sa.Table(
    "price_forecasts",
    metadata,
    sa.Column("market", sa.String(32), primary_key=True),
    sa.Column("node", sa.String(64), primary_key=True),
    sa.Column("product", sa.String(32), primary_key=True),
    sa.Column("ts", UtcDateTime(), primary_key=True, comment="interval start, UTC"),
    sa.Column("issue_time", UtcDateTime(), primary_key=True),
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("horizon_h", sa.Float(), nullable=False),
    sa.Column("p10", sa.Float(), nullable=True, comment="in `unit`"),
    sa.Column("p50", sa.Float(), nullable=False, comment="in `unit`"),
    sa.Column("p90", sa.Float(), nullable=True, comment="in `unit`"),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.CheckConstraint(_in("unit", PRICE_UNITS), name="unit"),
)

load_forecasts = sa.Table(
    "load_forecasts",
    metadata,
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("ts", UtcDateTime(), primary_key=True, comment="interval start, UTC"),
    sa.Column("issue_time", UtcDateTime(), primary_key=True),
    sa.Column("model_version", sa.String(128), primary_key=True),
    sa.Column("horizon_h", sa.Float(), nullable=False),
    sa.Column("p10_mw", sa.Float(), nullable=True),
    sa.Column("p50_mw", sa.Float(), nullable=False),
    sa.Column("p90_mw", sa.Float(), nullable=True),
)

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("market", sa.String(32), nullable=False),
    sa.Column("operating_day", sa.Date(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("objective_usd", sa.Float(), nullable=True),
    sa.Column("solve_path", sa.String(64), nullable=True),
    sa.Column("scenario", JsonDoc, nullable=True),
    sa.Column("result", JsonDoc, nullable=True),
    sa.UniqueConstraint("market", "operating_day", "version"),
)

schedule_intervals = sa.Table(
    "schedule_intervals",
    metadata,
    sa.Column(
        "schedule_id",
        BigId,
        sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("ts", UtcDateTime(), primary_key=True, comment="interval start, UTC"),
    sa.Column("charge_mw", sa.Float(), nullable=False),
    sa.Column("discharge_mw", sa.Float(), nullable=False),
    sa.Column("reg_up_mw", sa.Float(), nullable=False),
    sa.Column("reg_down_mw", sa.Float(), nullable=False),
    sa.Column("spin_mw", sa.Float(), nullable=False),
    sa.Column(
        "soc", sa.Float(), nullable=True, comment="fraction 0-1, end of interval"
    ),
    sa.Column("energy_value_usd_per_mwh", sa.Float(), nullable=True),
    sa.Column(
        "reserves",
        JsonDoc,
        nullable=True,
        comment="MW per reserve product (market rules' service names)",
    ),
    sa.Index(None, "site_id", "ts"),
)

bid_sets = sa.Table(
    "bid_sets",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("market", sa.String(32), nullable=False),
    sa.Column("operating_day", sa.Date(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("submitted_by", sa.String(64), nullable=False, comment="API key id"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("payload", JsonDoc, nullable=False),
    sa.Column("refusal_reason", sa.Text(), nullable=True),
    sa.CheckConstraint(_in("status", BID_SET_STATUSES), name="status"),
    # A version is stored once, accepted or refused (a fixed set is a new version).
    sa.Index(
        "uq_bid_sets_market_day_version",
        "market",
        "operating_day",
        "version",
        unique=True,
    ),
)

awards = sa.Table(
    "awards",
    metadata,
    sa.Column("market", sa.String(32), primary_key=True),
    sa.Column("operating_day", sa.Date(), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, comment="bid set version"),
    sa.Column("site_id", sa.String(64), primary_key=True),
    sa.Column("ts", UtcDateTime(), primary_key=True, comment="interval start, UTC"),
    sa.Column("product", sa.String(32), primary_key=True),
    sa.Column("award_mw", sa.Float(), nullable=False),
    sa.Column("price", sa.Float(), nullable=True, comment="in `unit`"),
    sa.Column("unit", sa.String(16), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint(_in("unit", PRICE_UNITS), name="unit"),
    sa.Index(None, "site_id", "ts"),
)

setpoints = sa.Table(
    "setpoints",
    metadata,
    sa.Column("cmd_id", sa.String(64), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("issued_ts", UtcDateTime(), nullable=False),
    sa.Column("valid_from", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column(
        "p_ac_w_setpoint", sa.Float(), nullable=False, comment="W, + = discharge"
    ),
    sa.Column("schedule_version", sa.Integer(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("ack_ts", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.CheckConstraint(_in("status", SETPOINT_STATUSES), name="status"),
    sa.Index(None, "site_id", "issued_ts"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ts", UtcDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False, comment="key id, system or cli"),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("object_type", sa.String(64), nullable=False),
    sa.Column("object_id", sa.String(200), nullable=True),
    sa.Column("detail", JsonDoc, nullable=True),
    sa.Index(None, "ts"),
    sa.Index(None, "object_type", "object_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.Column("note", sa.Text(), nullable=True),
    sa.Column("expires_at", UtcDateTime(), nullable=True),
    sa.UniqueConstraint("prefix"),
    sa.CheckConstraint(_in("role", API_KEY_ROLES), name="role"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("site_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.String(64), nullable=True),
    sa.Column("detail", JsonDoc, nullable=True),
    sa.CheckConstraint(_in("severity", ALERT_SEVERITIES), name="severity"),
    sa.Index(None, "site_id", "opened_at"),
)
