"""The ``keys`` and ``serve`` CLI commands (registered on a fresh root app)."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from fleet.cli import serve as serve_cli
from fleet.store import keys as key_store
from fleet.store.engine import make_engine
from fleet.store.tables import api_keys, audit_log


def _app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    serve_cli.register(root)
    return root


def test_keys_create_prints_key_once_and_stores_hash_when_role_valid(
    migrated_db_url: str,
) -> None:
    result = CliRunner().invoke(
        _app(),
        [
            "keys",
            "create",
            "--role",
            "scheduler",
            "--note",
            "bidder",
            "--db",
            migrated_db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"bfk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", secret)
    engine = make_engine(migrated_db_url)
    try:
        with engine.connect() as conn:
            key = key_store.authenticate(conn, secret)
            stored = conn.execute(sa.select(api_keys.c.hash)).scalar_one()
            actions = conn.execute(
                sa.select(audit_log.c.action, audit_log.c.actor)
            ).all()
    finally:
        engine.dispose()
    assert key is not None
    assert key.role == "scheduler"
    assert secret not in stored
    assert ("key.create", "cli") in actions
    listed = CliRunner().invoke(_app(), ["keys", "list", "--db", migrated_db_url])
    assert key.id in listed.stdout
    revoked = CliRunner().invoke(
        _app(), ["keys", "revoke", key.id, "--db", migrated_db_url]
    )
    assert revoked.exit_code == 0
    engine = make_engine(migrated_db_url)
    try:
        with engine.connect() as conn:
            assert key_store.authenticate(conn, secret) is None
    finally:
        engine.dispose()


def test_keys_create_fails_naming_role_when_role_unknown(migrated_db_url: str) -> None:
    result = CliRunner().invoke(
        _app(), ["keys", "create", "--role", "root", "--db", migrated_db_url]
    )
    assert result.exit_code != 0
    assert "role='root'" in str(result.exception)


def test_serve_exits_1_naming_revision_when_store_not_migrated(
    tmp_path: object,
) -> None:
    url = f"sqlite:///{tmp_path}/empty.sqlite"
    result = CliRunner().invoke(_app(), ["serve", "--db", url, "--mqtt", "none"])
    assert result.exit_code == 1
    assert "bessfleet db upgrade" in result.output


def test_keys_create_stores_expiry_when_expires_in_days_given(
    migrated_db_url: str,
) -> None:
    before = dt.datetime.now(dt.UTC)
    result = CliRunner().invoke(
        _app(),
        [
            "keys",
            "create",
            "--role",
            "viewer",
            "--expires-in-days",
            "2",
            "--db",
            migrated_db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    engine = make_engine(migrated_db_url)
    try:
        with engine.connect() as conn:
            key = key_store.authenticate(conn, secret)
            assert key is not None
            assert key.expires_at is not None
            assert (
                dt.timedelta(days=2)
                <= key.expires_at - before
                < dt.timedelta(days=2, minutes=1)
            )
            later = before + dt.timedelta(days=3)
            assert key_store.authenticate(conn, secret, now=later) is None
    finally:
        engine.dispose()
    listed = CliRunner().invoke(_app(), ["keys", "list", "--db", migrated_db_url])
    assert key.expires_at.strftime("%Y-%m-%d") in listed.stdout
