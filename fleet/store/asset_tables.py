"""Declare the asset registry and health feature tables on the shared MetaData.

Created by ``migrations/versions/0005_assets.py`` (which imports this module so that
``full_metadata()`` sees the tables once the migrations are loaded); ``0008`` makes the
registry append-only with attributed events (actor, entry time, reason), lets origin
and FEOC status be unknown (NULL) and adds ``health_daily.temp_mean_c``.
"""

from __future__ import annotations

import sqlalchemy as sa

from fleet.store.tables import BigId, JsonDoc, UtcDateTime, metadata

HEALTH_FEATURE_COLUMNS = (
    "bad_fraction",
    "gap_fraction",
    "spread_mid_soc_mv",
    "temp_at_power_c",
    "temp_mean_c",
    "soh",
    "energy_in_mwh",
    "energy_out_mwh",
    "soc_start",
    "soc_end",
    "soc_mean",
    "rte",
)
"""Float columns of ``health_daily`` (see ``forecasting.health.features``)."""

ASSET_KINDS = ("cell", "module", "string", "rack", "pcs")
ASSET_EVENT_KINDS = (
    "register",
    "install",
    "remove",
    "swap_in",
    "swap_out",
    "correct",
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


assets = sa.Table(
    "assets",
    metadata,
    sa.Column("serial", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("manufacturer", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column(
        "country_of_manufacture",
        sa.String(2),
        nullable=True,
        comment="ISO 3166-1 alpha-2; NULL = unknown origin",
    ),
    sa.Column("feoc", sa.Boolean(), nullable=True, comment="NULL = unknown"),
    sa.Column("energy_mwh", sa.Float(), nullable=True),
    sa.Column("site_id", sa.String(64), nullable=True),
    sa.Column("position", sa.String(64), nullable=True),
    sa.Column("dev_id", sa.String(32), nullable=True, comment="telemetry device"),
    sa.Column("parent_serial", sa.String(64), nullable=True),
    sa.Column("installed_at", UtcDateTime(), nullable=True),
    sa.Column("removed_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint(_in("kind", ASSET_KINDS), name="kind"),
    sa.Index(None, "site_id", "position"),
)

asset_events = sa.Table(
    "asset_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("serial", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("ts", UtcDateTime(), nullable=False, comment="effective time"),
    sa.Column("site_id", sa.String(64), nullable=True),
    sa.Column("position", sa.String(64), nullable=True),
    sa.Column("dev_id", sa.String(32), nullable=True),
    sa.Column("detail", JsonDoc, nullable=True),
    sa.Column("actor", sa.String(64), nullable=True, comment="who entered it"),
    sa.Column("recorded_at", UtcDateTime(), nullable=True, comment="entry time"),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.CheckConstraint(_in("kind", ASSET_EVENT_KINDS), name="kind"),
    sa.Index(None, "serial", "ts"),
)

health_daily = sa.Table(
    "health_daily",
    metadata,
    sa.Column("site_id", sa.String(32), primary_key=True),
    sa.Column("dev_id", sa.String(32), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True, comment="UTC day"),
    sa.Column("samples", sa.Integer(), nullable=False),
    *(sa.Column(name, sa.Float(), nullable=True) for name in HEALTH_FEATURE_COLUMNS),
    sa.Column("computed_at", UtcDateTime(), nullable=False),
)
"""Daily condition features per battery device, kept beyond raw telemetry retention."""
