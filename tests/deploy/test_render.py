"""fleet.deploy: the rendered broker config, ACL and env files work on a real Mosquitto."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from fleet.deploy import (
    SERVICE_USERS,
    DeployOptions,
    make_dev_certificates,
    render,
    render_acl,
    render_mosquitto_conf,
    render_passwd,
)
from fleet.errors import FleetInputError
from fleet.fleetfile import load_fleet
from tests.conftest import REPO_ROOT, free_port

EXAMPLE_FLEET = REPO_ROOT / "deploy" / "examples" / "fleet.toml"


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_render_writes_acl_for_every_site_when_given_example_fleet(
    tmp_path: Path,
) -> None:
    fleet = load_fleet(EXAMPLE_FLEET)
    done = render(fleet, tmp_path)
    acl = (tmp_path / "mosquitto" / "acl").read_text()
    for site in fleet.sites:
        assert f"user {site.id}\n" in acl
        assert f"topic write bess/v1/{site.mqtt_group}/{site.id}/up/#" in acl
        assert f"topic read bess/v1/{site.mqtt_group}/{site.id}/down/#" in acl
    assert set(done.site_ids) == {s.id for s in fleet.sites}
    # a site may never write another site's topics or read the platform's stream
    assert "topic write bess/v1/+/" not in acl.split("user tx-odessa-01")[1]
    env = {p.name: _env(p.read_text()) for p in (tmp_path / "env").iterdir()}
    assert env["bessfleet.env"]["BESSFLEET_DATABASE_URL"].startswith(
        "postgresql+psycopg://"
    )
    ids = [env[f"ingest-{k}.env"]["BESSFLEET_INGEST_CLIENT_ID"] for k in (1, 2)]
    assert len(set(ids)) == 2
    assert env["ingest-1.env"]["BESSFLEET_MQTT_URL"].startswith(
        "mqtts://bessfleet-ingest:"
    )


def test_render_keeps_service_passwords_when_rendered_twice(tmp_path: Path) -> None:
    fleet = load_fleet(EXAMPLE_FLEET)
    render(fleet, tmp_path)
    first = (tmp_path / "env" / "api.env").read_text()
    render(fleet, tmp_path)
    assert (tmp_path / "env" / "api.env").read_text() == first
    assert (tmp_path / "secrets").stat().st_mode & 0o077 == 0


def test_render_raises_naming_field_when_ingest_workers_zero(tmp_path: Path) -> None:
    with pytest.raises(FleetInputError, match="ingest_workers=0"):
        render(load_fleet(EXAMPLE_FLEET), tmp_path, DeployOptions(ingest_workers=0))


# --- the rendered configuration on a real broker --------------------------------------


class _Broker:
    def __init__(
        self, proc: subprocess.Popen[bytes], site_port: int, service_port: int
    ) -> None:
        self.proc = proc
        self.site_port = site_port
        self.service_port = service_port


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[_Broker, Path, str]]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    root = tmp_path_factory.mktemp("tlsbroker")
    root.chmod(0o755)
    fleet = load_fleet(EXAMPLE_FLEET)
    sites = [fleet.sites[0].id, fleet.sites[1].id]
    certs = root / "certs"
    make_dev_certificates(certs, [*sites, "stranger"])
    for key in certs.glob("*.key"):
        key.chmod(0o644)  # the broker may drop privileges to the mosquitto user
    options = DeployOptions(
        cert_dir=str(certs), config_dir=str(root / "conf"), data_dir=str(root / "data")
    )
    render(fleet, root / "out", options)
    (root / "conf").mkdir()
    (root / "data").mkdir()
    shutil.copy(root / "out" / "mosquitto" / "acl", root / "conf" / "acl")
    password = "pw-" + "x" * 20
    (root / "conf" / "passwd").write_text(
        render_passwd(dict.fromkeys(SERVICE_USERS, password))
    )
    for path in (root / "conf", root / "data"):
        path.chmod(0o777)
    for path in (root / "conf").iterdir():
        path.chmod(0o644)
    site_port, service_port = free_port(), free_port()
    conf = root / "mosquitto.conf"
    # run as the test's user: mosquitto started as root would otherwise switch to the
    # mosquitto user, which cannot enter pytest's private temp folders
    conf.write_text(
        "user root\n"
        + render_mosquitto_conf(
            options,
            site_port=site_port,
            service_port=service_port,
            bind_address="127.0.0.1",
        )
    )
    log = (root / "broker.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as a, socket.socket() as b:
            if (
                a.connect_ex(("127.0.0.1", site_port)) == 0
                and b.connect_ex(("127.0.0.1", service_port)) == 0
            ):
                break
        if proc.poll() is not None:
            log.close()
            pytest.fail(
                f"mosquitto rejected the rendered config:\n{(root / 'broker.log').read_text()}"
            )
        time.sleep(0.05)
    try:
        yield _Broker(proc, site_port, service_port), certs, password
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{time.monotonic_ns()}",
        protocol=mqtt.MQTTv5,
    )


def _connect(client: mqtt.Client, port: int) -> int:
    """Connect, wait for CONNACK; return its reason code value (0 = accepted)."""
    done = threading.Event()
    result: list[int] = []

    def on_connect(
        _c: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        result.append(int(getattr(rc, "value", rc)))
        done.set()

    client.on_connect = on_connect
    client.connect_async("127.0.0.1", port, clean_start=True, properties=Properties(1))
    client.loop_start()
    if not done.wait(10):
        client.loop_stop()
        pytest.fail("no CONNACK within 10 s")
    return result[0]


@pytest.mark.integration
def test_rendered_broker_routes_own_topic_and_denies_foreign_when_acl_applied(
    tls_broker: tuple[_Broker, Path, str],
) -> None:
    broker, certs, password = tls_broker
    fleet = load_fleet(EXAMPLE_FLEET)
    site_a, site_b = fleet.sites[0], fleet.sites[1]
    received: list[str] = []
    got = threading.Event()

    ingest = _client("ingest")
    ingest.username_pw_set("bessfleet-ingest", password)
    ingest.tls_set(ca_certs=str(certs / "ca.crt"))
    assert _connect(ingest, broker.service_port) == 0
    subscribed = threading.Event()
    ingest.on_subscribe = lambda *_a: subscribed.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        received.append(msg.topic)
        if msg.topic.endswith("/done"):
            got.set()

    ingest.on_message = on_message
    ingest.subscribe("$share/bessfleet-ingest/bess/v1/+/+/up/#", qos=1)
    assert subscribed.wait(10)

    def gateway() -> mqtt.Client:
        client = _client(site_a.id)
        client.tls_set(
            ca_certs=str(certs / "ca.crt"),
            certfile=str(certs / f"{site_a.id}.crt"),
            keyfile=str(certs / f"{site_a.id}.key"),
        )
        assert _connect(client, broker.site_port) == 0
        return client

    own = f"bess/v1/{site_a.mqtt_group}/{site_a.id}/up/tlm/bank1"
    foreign = f"bess/v1/{site_b.mqtt_group}/{site_b.id}/up/tlm/bank1"
    marker = f"bess/v1/{site_a.mqtt_group}/{site_a.id}/up/done"
    # one connection per publish: Mosquitto 2.0.11 may drop a connection whose publish
    # the ACL denies, and that must not hide the outcome of the others
    for topic in (own, foreign, marker):
        client = gateway()
        try:
            client.publish(topic, b"{}", qos=1).wait_for_publish(10)
        except RuntimeError:
            assert topic == foreign, f"publish to {topic} failed"
        client.loop_stop()
        client.disconnect()
    assert got.wait(10), f"nothing routed; got {received}"
    ingest.loop_stop()
    ingest.disconnect()
    assert own in received
    assert foreign not in received


@pytest.mark.integration
def test_rendered_broker_refuses_service_login_when_password_wrong(
    tls_broker: tuple[_Broker, Path, str],
) -> None:
    broker, certs, _password = tls_broker
    client = _client("intruder")
    client.username_pw_set("bessfleet-ingest", "wrong")
    client.tls_set(ca_certs=str(certs / "ca.crt"))
    code = _connect(client, broker.service_port)
    client.loop_stop()
    assert code != 0


@pytest.mark.integration
def test_rendered_broker_refuses_gateway_when_no_client_certificate(
    tls_broker: tuple[_Broker, Path, str],
) -> None:
    broker, certs, _password = tls_broker
    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    with (
        socket.create_connection(("127.0.0.1", broker.site_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        try:
            data = tls.recv(
                1
            )  # the broker answers the missing certificate with an alert
        except (ssl.SSLError, ConnectionResetError):
            data = b""
    assert data == b""


def test_render_acl_gives_unknown_identity_no_topic_when_not_in_fleet() -> None:
    acl = render_acl(load_fleet(EXAMPLE_FLEET))
    assert "user stranger" not in acl
