"""deploy/docker-entrypoint.sh runs each role's command, executed directly (no Docker)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.store.migrate import current, head_revision
from tests.conftest import REPO_ROOT

ENTRYPOINT = REPO_ROOT / "deploy" / "docker-entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


def _run(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_entrypoint_runs_given_command_when_not_a_role() -> None:
    done = _run("bessfleet", "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bessfleet ")


@pytest.mark.integration
def test_entrypoint_migrates_store_to_head_when_role_migrate(empty_db_url: str) -> None:
    done = _run("migrate", env={"BESSFLEET_DATABASE_URL": empty_db_url})
    assert done.returncode == 0, done.stderr
    assert current(empty_db_url) == head_revision()


def test_entrypoint_migrates_then_serves_api_when_role_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = {"BESSFLEET_DATABASE_URL": url, "BESSFLEET_ENTRYPOINT_DRY_RUN": "1"}
    done = _run(env=env)  # no argument: BESSFLEET_ROLE, default api
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "exec: bessfleet serve --host 0.0.0.0 --port 8000"
    )
    assert current(url) == head_revision()


def test_entrypoint_exits_nonzero_when_store_unreachable(tmp_path: Path) -> None:
    env = {
        "BESSFLEET_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "BESSFLEET_DB_WAIT_S": "0",
    }
    done = _run("migrate", env=env)
    assert done.returncode == 1
    assert "did not accept the migration" in done.stderr


@pytest.mark.parametrize(
    ("role", "env", "expected"),
    [
        (
            "ingest",
            {"BESSFLEET_INGEST_CLIENT_ID": "ingest-7"},
            "exec: bessfleet ingest --client-id ingest-7 --share bessfleet-ingest",
        ),
        (
            "scheduler",
            {},
            "exec: bessfleet operate --fleet /etc/bessfleet/fleet.toml --market-mode iso"
            " --export-dir /var/lib/bessfleet/exports",
        ),
        (
            "dask-worker",
            {"BESSFLEET_DASK_ADDRESS": "tcp://dask-scheduler:8786"},
            "exec: dask worker tcp://dask-scheduler:8786 --nworkers 1 --nthreads 1"
            " --memory-limit auto --no-dashboard",
        ),
        (
            "dask-scheduler",
            {},
            "exec: dask scheduler --host 0.0.0.0 --port 8786 --dashboard-address :8787",
        ),
    ],
)
def test_entrypoint_maps_role_to_command_when_dry_run(
    role: str, env: dict[str, str], expected: str
) -> None:
    done = _run(role, env={**env, "BESSFLEET_ENTRYPOINT_DRY_RUN": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_entrypoint_names_missing_setting_when_dask_worker_has_no_address() -> None:
    done = _run("dask-worker")
    assert done.returncode != 0
    assert "BESSFLEET_DASK_ADDRESS" in done.stderr


def test_entrypoint_exports_db_password_from_file_when_secret_mounted(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret")
    done = _run(
        "sh",
        "-c",
        'printf %s "$PGPASSWORD"',
        env={"BESSFLEET_DB_PASSWORD_FILE": str(secret)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "s3cret"


def test_entrypoint_healthcheck_fails_when_api_not_listening() -> None:
    done = _run("healthcheck", env={"BESSFLEET_ROLE": "api", "BESSFLEET_API_PORT": "1"})
    assert done.returncode == 1
    assert _run("healthcheck", env={"BESSFLEET_ROLE": "ingest"}).returncode == 0
