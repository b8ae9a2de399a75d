"""Alembic environment: run the store's migrations on a given connection or URL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from fleet.store.engine import make_engine
from fleet.store.migrate import full_metadata

config = context.config
target_metadata = full_metadata()


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get(
        "url"
    ) or config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "sqlalchemy.url is not set in the Alembic config"
        raise RuntimeError(msg)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
