"""Apply the store's Alembic migrations programmatically (scripts ship in the package)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from fleet.errors import StoreError
from fleet.store.engine import make_engine
from fleet.store.tables import metadata

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Modules that declare tables on :data:`fleet.store.tables.metadata`; optional ones
#: (written by other areas) are imported when present.
TABLE_MODULES = (
    "fleet.store.tables",
    "fleet.store.telemetry_tables",
    "fleet.store.asset_tables",
    "fleet.store.retention",
    "fleet.store.ops_tables",
    "fleet.store.keys",
)


def full_metadata() -> sa.MetaData:
    """Return the shared MetaData with every table module of the store imported."""
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return metadata


def alembic_config(url: str) -> Config:
    """Return an Alembic config pointing at the packaged migration scripts.

    Parameters
    ----------
    url
        SQLAlchemy URL of the database to migrate.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision shipped with the package."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    if len(heads) != 1:
        msg = f"the store migrations have {len(heads)} heads {heads}; expected one"
        raise StoreError(msg)
    return heads[0]


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest).

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…``).
    revision
        Target revision id, or ``"head"``.

    Raises
    ------
    StoreError
        When the database cannot be reached or a migration fails.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except sa.exc.SQLAlchemyError as exc:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        msg = f"cannot migrate the store at {shown}: {exc}"
        raise StoreError(msg) from exc
    finally:
        engine.dispose()
    logger.info("store migrated to %s", revision)


def current(url: str) -> str | None:
    """Return the revision the database at ``url`` is at (None when never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except sa.exc.SQLAlchemyError as exc:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        msg = f"cannot read the store's revision at {shown}: {exc}"
        raise StoreError(msg) from exc
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Raise :class:`StoreError` unless the database at ``url`` is fully migrated."""
    at = current(url)
    head = head_revision()
    if at != head:
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        msg = (
            f"the store at {shown} is at revision {at or 'none (empty)'}, "
            f"not {head}: run `bessfleet db upgrade --db {shown}` first"
        )
        raise StoreError(msg)
