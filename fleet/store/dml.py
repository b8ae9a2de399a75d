"""Write many rows at once: dialect-aware upsert in executemany chunks, transactions."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from fleet.errors import StoreError

logger = logging.getLogger(__name__)

#: Rows per executemany call: large enough to amortize round trips, small enough to
#: keep memory flat on 500k-row imports.
CHUNK_ROWS = 5000

#: From this many rows on, PostgreSQL upserts go through COPY into a temporary table.
COPY_MIN_ROWS = 2000

Bind = sa.Engine | sa.Connection


@contextlib.contextmanager
def transaction(bind: Bind) -> Iterator[sa.Connection]:
    """Yield a connection inside a transaction.

    An :class:`~sqlalchemy.Engine` gets a new connection that commits on success; a
    :class:`~sqlalchemy.Connection` already in a transaction is used as is (the caller
    commits), otherwise a transaction is begun and committed on it.
    """
    if isinstance(bind, sa.Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    copy_min_rows: int = COPY_MIN_ROWS,
) -> int:
    """Insert ``rows`` into ``table``; on a key conflict update (or keep) the old row.

    SQLite (and small PostgreSQL batches): one ``INSERT … ON CONFLICT`` statement run
    with executemany, ``chunk_rows`` rows at a time. PostgreSQL batches of
    ``copy_min_rows`` or more: ``COPY`` into a temporary table, then one
    ``INSERT … SELECT … ON CONFLICT``. Both run in the caller's transaction and give
    the same result; within ``rows``, a repeated key keeps the last row (the first
    with ``DO NOTHING``), as executemany would.

    Parameters
    ----------
    conn
        Connection (the caller owns the transaction).
    table
        Target table.
    rows
        Rows as mappings of column name to value; all rows carry the same keys.
    key
        Columns of the primary key or a unique constraint that detects the conflict.
    update
        Columns overwritten from the new row on conflict. ``None`` (default): every
        column of the rows that is not in ``key``; empty: ``DO NOTHING``.
    chunk_rows
        Rows per executemany call.
    copy_min_rows
        Smallest PostgreSQL batch sent through COPY.

    Returns
    -------
    int
        Number of rows submitted (inserted or updated or, with ``DO NOTHING``, kept).

    Raises
    ------
    StoreError
        For a database other than SQLite or PostgreSQL, or an unknown column.
    """
    if not rows:
        return 0
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table)
    else:
        msg = f"upsert supports sqlite and postgresql, not {dialect}"
        raise StoreError(msg)
    unknown = [c for c in (*key, *rows[0]) if c not in table.c]
    if unknown:
        msg = f"table {table.name} has no column(s) {sorted(set(unknown))}"
        raise StoreError(msg)
    absent = [k for k in key if k not in rows[0]]
    if absent:
        msg = f"upsert into {table.name}: rows lack key column(s) {absent}"
        raise StoreError(msg)
    columns = update if update is not None else [c for c in rows[0] if c not in key]
    if dialect == "postgresql" and len(rows) >= copy_min_rows:
        return _copy_upsert(conn, table, rows, list(key), list(columns))
    if columns:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in columns}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    for start in range(0, len(rows), chunk_rows):
        conn.execute(stmt, list(rows[start : start + chunk_rows]))
    logger.debug("upserted %d rows into %s", len(rows), table.name)
    return len(rows)


def _copy_upsert(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key: list[str],
    update: list[str],
) -> int:
    """Upsert through ``COPY`` into a temporary table (PostgreSQL, psycopg 3)."""
    names = list(rows[0])
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in names
    ]
    key_positions = [names.index(k) for k in key]
    unique: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        values = [
            value if proc is None else proc(value)
            for value, proc in zip((row[n] for n in names), processors, strict=True)
        ]
        ident = tuple(values[i] for i in key_positions)
        if update or ident not in unique:
            unique[ident] = values
    staging = quote(f"_bulk_{table.name}_{uuid.uuid4().hex[:8]}")
    target = quote(table.name)
    cols = ", ".join(quote(n) for n in names)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} (LIKE {target} INCLUDING DEFAULTS) "
        "ON COMMIT DROP"
    )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for values in unique.values():
                copy.write_row(values)
    finally:
        cursor.close()
    conflict = ", ".join(quote(k) for k in key)
    if update:
        sets = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        action = f"DO UPDATE SET {sets}"
    else:
        action = "DO NOTHING"
    conn.exec_driver_sql(
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staging} "
        f"ON CONFLICT ({conflict}) {action}"
    )
    conn.exec_driver_sql(f"DROP TABLE {staging}")
    logger.debug("upserted %d rows into %s through COPY", len(unique), table.name)
    return len(rows)
