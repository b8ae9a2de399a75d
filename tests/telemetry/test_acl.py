"""Per-site ACLs: the broker refuses a site publishing under another site's topic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from telemetry.broker_config import INGEST_USER, acl_file, hash_password, password_file
from telemetry.registry import site_spec_from
from tests.conftest import Broker, start_mosquitto, stop_mosquitto
from tests.factories import fleet_data, make_fleet, write_fleet_file
from tests.telemetry.helpers import (
    IngestProcess,
    Publisher,
    count,
    encode,
    rows,
    tlm,
    topic,
    wait_until,
)

pytestmark = pytest.mark.integration

PASSWORDS = {INGEST_USER: "ingest-pw", "site-01": "pw-01", "site-02": "pw-02"}


def test_acl_file_limits_each_site_to_its_own_topics_when_generated() -> None:
    specs = [site_spec_from(s) for s in make_fleet(2).sites]
    text = acl_file(specs)
    block = text.split("user site-01\n")[1].split("\n\n")[0]
    assert "topic write bess/v1/ercot/site-01/up/#" in block
    assert "topic read bess/v1/ercot/site-01/down/#" in block
    assert "site-02" not in block


def test_hash_password_matches_mosquitto_format_when_salt_given() -> None:
    hashed = hash_password("secret", salt=b"0123456789ab")
    assert hashed.startswith("$7$101$MDEyMzQ1Njc4OWFi$")


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    specs = [site_spec_from(s) for s in make_fleet(2).sites]
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "acl").write_text(acl_file(specs))
    (auth / "passwd").write_text(password_file(PASSWORDS))
    extra = (
        "user root\n"
        "allow_anonymous false\n"
        f"password_file {auth / 'passwd'}\n"
        f"acl_file {auth / 'acl'}\n"
    )
    broker = start_mosquitto(tmp_path / "broker", extra_conf=extra)
    yield broker
    stop_mosquitto(broker)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(3))
    engine.dispose()
    return url


def test_broker_refuses_spoofed_topic_when_acl_on(
    acl_broker: Broker, store_url: str, tmp_path: Path
) -> None:
    url = f"mqtt://{INGEST_USER}:ingest-pw@{acl_broker.host}:{acl_broker.port}"
    ingest = IngestProcess(store_url, url, tmp_path / "ingest.log").start()
    pub = Publisher(acl_broker.host, acl_broker.port, "site-01", "site-01", "pw-01")
    try:
        own = pub.publish_all(
            [(topic("site-01", "tlm", "bank1"), encode(tlm("site-01", seq=1)))]
        )
        spoof = pub.publish_all(
            [(topic("site-02", "tlm", "bank1"), encode(tlm("site-02", seq=1)))]
        )
        pub.wait_acked(own + spoof)
        assert set(spoof) <= pub.refused  # MQTT 5 PUBACK: not authorized
        assert not set(own) & pub.refused
        wait_until(
            lambda: count(store_url, "SELECT count(*) FROM tlm_measurements") == 1,
            30,
            "the site's own sample",
        )
        stored = rows(store_url, "SELECT site_id FROM tlm_measurements")
        assert stored == [("site-01",)]
        assert count(store_url, "SELECT count(*) FROM tlm_quarantine") == 0
    finally:
        pub.close()
        ingest.stop()


def test_ingest_quarantines_spoofed_payload_when_acl_off(
    mosquitto: Broker, store_url: str, tmp_path: Path
) -> None:
    ingest = IngestProcess(
        store_url, mosquitto.url, tmp_path / "ingest.log", "ingest-acl-off"
    ).start()
    pub = Publisher(mosquitto.host, mosquitto.port, "spoofer")
    try:
        mids = pub.publish_all(
            [(topic("site-02", "tlm", "bank1"), encode(tlm("site-01", seq=1)))]
        )
        pub.wait_acked(mids)
        wait_until(
            lambda: count(store_url, "SELECT count(*) FROM tlm_quarantine") == 1,
            30,
            "the spoofed message in quarantine",
        )
        assert rows(
            store_url, "SELECT reason, site_from_topic FROM tlm_quarantine"
        ) == [("topic_mismatch", "site-02")]
        assert count(store_url, "SELECT count(*) FROM tlm_measurements") == 0
    finally:
        pub.close()
        ingest.stop()


def test_gen_auth_writes_files_when_run_on_fleet_file(tmp_path: Path) -> None:
    import importlib.util

    from tests.telemetry.helpers import REPO

    spec = importlib.util.spec_from_file_location(
        "gen_auth", REPO / "deploy" / "mosquitto" / "gen_auth.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fleet_file = write_fleet_file(tmp_path, fleet_data(2))
    creds = module.generate(fleet_file, tmp_path / "out")
    assert set(creds) == {INGEST_USER, "bessfleet-dispatch", "site-01", "site-02"}
    again = module.generate(fleet_file, tmp_path / "out")
    assert again == creds  # passwords are kept on re-run
    assert "user site-02" in (tmp_path / "out" / "acl").read_text()
