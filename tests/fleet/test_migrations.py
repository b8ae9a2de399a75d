from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from fleet.cli import main
from fleet.errors import StoreError
from fleet.store import migrate
from fleet.store.engine import make_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def _diff(url: str, metadata: sa.MetaData) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_matches_metadata_when_applied_from_empty(empty_db_url: str) -> None:
    assert migrate.current(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head_revision()
    metadata = migrate.full_metadata()
    assert {"sites", "prices", "schedules", "audit_log"} <= set(metadata.tables)
    assert _diff(empty_db_url, metadata) == []


def test_compare_metadata_finds_diff_when_tables_py_drifts(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    drifted = sa.MetaData()
    for table in migrate.full_metadata().tables.values():
        table.to_metadata(drifted)
    sa.Table("not_migrated", drifted, sa.Column("id", sa.Integer, primary_key=True))
    drifted.tables["prices"].append_column(sa.Column("extra_mw", sa.Float()))
    diff = _diff(empty_db_url, drifted)
    kinds = {entry[0] for entry in diff if isinstance(entry, tuple)}
    assert {"add_table", "add_column"} <= kinds


def test_upgrade_is_a_noop_when_already_at_head(migrated_db_url: str) -> None:
    engine = make_engine(migrated_db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_log (ts, actor, action, object_type) "
                "VALUES (CURRENT_TIMESTAMP, 'cli', 'x', 'y')"
            )
        )
    engine.dispose()
    migrate.upgrade(migrated_db_url)
    assert migrate.current(migrated_db_url) == migrate.head_revision()
    engine = make_engine(migrated_db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar() == 1
    engine.dispose()


def test_upgrade_stops_at_revision_when_one_is_given(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0001")
    assert migrate.current(empty_db_url) == "0001"
    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head_revision()


def test_require_head_raises_naming_command_when_db_empty(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    with pytest.raises(StoreError, match="bessfleet db upgrade"):
        migrate.require_head(url)


def test_upgrade_raises_store_error_when_server_unreachable() -> None:
    with pytest.raises(StoreError, match="cannot"):
        migrate.upgrade("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")


def test_upgrade_finds_packaged_scripts_when_cwd_is_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite'}"
    code = "import sys; from fleet.store import migrate; migrate.upgrade(sys.argv[1]); print(migrate.current(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, url],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == migrate.head_revision()


def test_db_upgrade_cli_prints_revision_when_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "upgrade", "--db", url])
    assert exit_info.value.code == 0
    head = migrate.head_revision()
    assert f"upgraded from empty to {head}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "current", "--db", url])
    assert exit_info.value.code == 0
    assert f"revision {head} (newest)" in capsys.readouterr().out


def test_db_current_cli_exits_1_when_db_not_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "current", "--db", url])
    assert exit_info.value.code == 1
    assert "run `bessfleet db upgrade`" in capsys.readouterr().out


def test_db_upgrade_cli_uses_settings_url_when_no_db_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'from_env.sqlite'}"
    monkeypatch.setenv("BESSFLEET_DATABASE_URL", url)
    with pytest.raises(SystemExit) as exit_info:
        main(["db", "upgrade"])
    assert exit_info.value.code == 0
    assert url in capsys.readouterr().out
    assert migrate.current(url) == migrate.head_revision()
