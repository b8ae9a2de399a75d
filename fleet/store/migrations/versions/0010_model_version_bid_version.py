"""Widen forecast model versions to 128 characters; one bid set per version.

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-07

- ``price_forecasts.model_version`` and ``load_forecasts.model_version`` become
  VARCHAR(128): a registry model name carries market, node, product, training end and
  a digest (``CAISO-UNSPECIFIED_DERVET_CAISO_CASE-reg_up-20210101T07-ef13146d12`` is 66
  characters), which PostgreSQL refused in VARCHAR(64).
- ``bid_sets (market, operating_day, version)`` gets a unique index over the accepted
  bid sets: a version is taken once it has been accepted (the API answers 409, the
  CLI exits 2); refused pushes stay on record and may share a version.

Hand-written to match ``fleet/store/tables.py`` as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_INDEX = "ix_bid_sets_market"
NEW_INDEX = "uq_bid_sets_market_day_version"


def _duplicates() -> list[tuple[str, str, int]]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT market, operating_day, version FROM bid_sets "
            "WHERE status = 'accepted' "
            "GROUP BY market, operating_day, version HAVING COUNT(*) > 1"
        )
    )
    return [(str(m), str(d), int(v)) for m, d, v in rows]


def upgrade() -> None:
    """Widen the model version columns and make bid-set versions unique."""
    for table in ("price_forecasts", "load_forecasts"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "model_version",
                existing_type=sa.String(64),
                type_=sa.String(128),
                existing_nullable=False,
            )
    duplicates = _duplicates()
    if duplicates:
        msg = (
            "bid_sets holds an accepted (market, operating_day, version) more than once: "
            f"{duplicates[:10]}; renumber or delete them, then upgrade again"
        )
        raise RuntimeError(msg)
    op.drop_index(OLD_INDEX, table_name="bid_sets")
    op.create_index(
        NEW_INDEX,
        "bid_sets",
        ["market", "operating_day", "version"],
        unique=True,
        sqlite_where=sa.text("status = 'accepted'"),
        postgresql_where=sa.text("status = 'accepted'"),
    )


def downgrade() -> None:
    """Restore VARCHAR(64) model versions and the plain bid-set index."""
    op.drop_index(NEW_INDEX, table_name="bid_sets")
    op.create_index(OLD_INDEX, "bid_sets", ["market", "operating_day", "version"])
    for table in ("price_forecasts", "load_forecasts"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "model_version",
                existing_type=sa.String(128),
                type_=sa.String(64),
                existing_nullable=False,
            )
