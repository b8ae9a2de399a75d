"""Shared fixtures: real data sets, databases (SQLite and PostgreSQL) and a real broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.store_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("BESSFLEET_SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data")
)
SPEC_EXAMPLES = REPO_ROOT.parent / "shared" / "spec" / "examples"


def free_port() -> int:
    """Return a TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real market data; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data folder {SHARED_DATA} is absent (set BESSFLEET_SHARED_DATA_DIR)"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def spec_examples() -> Path:
    """The folder of the dispatch spec's examples."""
    if not SPEC_EXAMPLES.is_dir():
        pytest.skip(f"spec examples folder {SPEC_EXAMPLES} is absent")
    return SPEC_EXAMPLES


def _pg_admin_url() -> str | None:
    return os.environ.get("BESSFLEET_TEST_DATABASE_URL") or None


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of the PostgreSQL server CI provides; skips when not configured."""
    url = _pg_admin_url()
    if not url:
        pytest.skip("BESSFLEET_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    return url


def _create_pg_database(admin_url: str) -> tuple[str, str]:
    """Create a fresh, uniquely named database on the server; return (url, name)."""
    import sqlalchemy as sa

    name = f"bessfleet_t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = (
        sa.engine.make_url(admin_url)
        .set(database=name)
        .render_as_string(hide_password=False)
    )
    return url, name


def _drop_pg_database(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    admin = _pg_admin_url()
    if not admin:
        pytest.skip(
            "BESSFLEET_TEST_DATABASE_URL is not set: PostgreSQL variant skipped"
        )
    url, name = _create_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@dataclass(frozen=True)
class Broker:
    """A Mosquitto broker started for the tests."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    conf_path: Path
    data_dir: Path

    @property
    def url(self) -> str:
        """The broker's URL as the CLI takes it."""
        return f"mqtt://{self.host}:{self.port}"


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data_dir}/
autosave_interval 1
max_queued_messages 0
max_queued_bytes 1073741824
max_inflight_messages 0
persistent_client_expiration 7d
message_size_limit 262144
log_dest file {data_dir}/mosquitto.log
"""


def start_mosquitto(
    data_dir: Path, port: int | None = None, extra_conf: str = ""
) -> Broker:
    """Start a Mosquitto broker on a free loopback port with the spec's queue settings."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    conf = data_dir / "mosquitto.conf"
    # As root, Mosquitto drops to the `mosquitto` user and then cannot write its
    # persistence file under pytest's private temp dirs: keep it root here.
    run_as = "user root\n" if os.geteuid() == 0 and "user " not in extra_conf else ""
    conf.write_text(
        MOSQUITTO_CONF.format(port=port, data_dir=data_dir) + run_as + extra_conf
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return Broker("127.0.0.1", port, proc, conf, data_dir)
        if proc.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start listening within 10 s")


def stop_mosquitto(broker: Broker) -> None:
    """Stop a broker started by :func:`start_mosquitto`."""
    broker.process.terminate()
    try:
        broker.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        broker.process.kill()
        broker.process.wait()
    if broker.process.stderr is not None:
        broker.process.stderr.close()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real Mosquitto broker on a free port, shared by the session."""
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield broker
    stop_mosquitto(broker)
