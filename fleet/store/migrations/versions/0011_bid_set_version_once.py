"""A bid-set version is stored once, accepted or refused.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-07

Revision 0010 made ``bid_sets (market, operating_day, version)`` unique over the accepted
bid sets only, so a refused push and a later push could share a version. Now the index
``uq_bid_sets_market_day_version`` covers every row: a version pushed twice is refused
(the API answers 409, ``bessfleet bids push`` exits 2); a fixed bid set is pushed as a
new version. A database holding a version more than once stops the upgrade, naming
the rows (renumber or delete the refused duplicates, then upgrade again).

Hand-written to match ``fleet/store/tables.py`` as of this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEX = "uq_bid_sets_market_day_version"
COLUMNS = ["market", "operating_day", "version"]


def _duplicates() -> list[tuple[str, str, int, int]]:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT market, operating_day, version, COUNT(*) FROM bid_sets "
            "GROUP BY market, operating_day, version HAVING COUNT(*) > 1 "
            "ORDER BY market, operating_day, version"
        )
    )
    return [(str(m), str(d), int(v), int(n)) for m, d, v, n in rows]


def upgrade() -> None:
    """Make the bid-set version unique over every row."""
    duplicates = _duplicates()
    if duplicates:
        shown = ", ".join(
            f"{m} {d} version={v} ({n} rows)" for m, d, v, n in duplicates
        )
        msg = (
            f"bid_sets stores a version more than once: {shown[:2000]}; renumber or "
            "delete the refused duplicates (SELECT id, status FROM bid_sets WHERE ...), "
            "then upgrade again"
        )
        raise RuntimeError(msg)
    op.drop_index(INDEX, table_name="bid_sets")
    op.create_index(INDEX, "bid_sets", COLUMNS, unique=True)


def downgrade() -> None:
    """Restore the index over the accepted bid sets only."""
    op.drop_index(INDEX, table_name="bid_sets")
    op.create_index(
        INDEX,
        "bid_sets",
        COLUMNS,
        unique=True,
        sqlite_where=sa.text("status = 'accepted'"),
        postgresql_where=sa.text("status = 'accepted'"),
    )
