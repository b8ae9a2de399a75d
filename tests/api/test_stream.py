"""The live stream pushes API writes and store changes; readiness checks store and broker."""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from fleet.api import sample
from fleet.api.events import EventBus
from fleet.store.tables import alerts, setpoints
from tests.api.conftest import Store, auth
from tests.api.server import http_client, live_server
from tests.conftest import Broker, free_port


class StreamReader:
    """Read ``/v1/stream`` in a thread and queue the parsed events."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(30.0, read=60.0)
        )
        self._headers = headers
        self._stop = threading.Event()
        self.opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream(
                "GET", "/v1/stream", headers=self._headers
            ) as response:
                self.status = response.status_code
                self.opened.set()
                kind, data = "message", ""
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data += line[6:]
                    elif line == "":
                        if data:
                            self.events.put((kind, json.loads(data)))
                        kind, data = "message", ""
        except httpx.HTTPError:
            self.opened.set()

    def wait_for(self, kind: str, timeout_s: float = 15.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got_kind, data = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if got_kind == kind:
                return data
        msg = f"no {kind!r} event within {timeout_s} s"
        raise AssertionError(msg)

    def close(self) -> None:
        self._stop.set()
        self._client.close()


@pytest.fixture
def reader_factory() -> Iterator[list[StreamReader]]:
    readers: list[StreamReader] = []
    yield readers
    for r in readers:
        r.close()


def test_stream_answers_401_when_key_missing(client: httpx.Client) -> None:
    assert client.get("/v1/stream").status_code == 401


def test_stream_pushes_bids_state_schedule_and_alarm_when_they_happen(
    store: Store, reader_factory: list[StreamReader]
) -> None:
    with (
        live_server(store.url, poll_interval_s=0.1) as server,
        http_client(server) as client,
    ):
        reader = StreamReader(server.url, auth(store, "viewer"))
        reader_factory.append(reader)
        assert reader.opened.wait(10)
        assert reader.status == 200
        time.sleep(0.3)
        pushed = client.put(
            "/v1/markets/ERCOT/bids/2031-01-01",
            json={
                "bids": [
                    {
                        "site_id": "tx-ennis-01",
                        "product": "energy",
                        "hour_ending": 5,
                        "curve": [[0.0, 10.0]],
                    }
                ]
            },
            headers=auth(store, "scheduler"),
        )
        assert pushed.status_code == 201
        bids = reader.wait_for("bids")
        assert bids["operating_day"] == "2031-01-01"
        site = store.fleet.sites[2]
        with store.engine.begin() as conn:
            sample.write_state(
                conn, site, 2, ts=dt.datetime.now(dt.UTC), online=False, soc=0.42
            )
        state = reader.wait_for("state")
        while state["site_id"] != site.id:
            state = reader.wait_for("state")
        assert state["state"]["soc"] == pytest.approx(0.42)
        assert state["state"]["online"] is False
        with store.engine.begin() as conn:
            new_id = sample.write_schedule(
                conn,
                store.fleet.sites,
                market="CAISO",
                operating_day=dt.date(2031, 1, 2),
            )
        schedule = reader.wait_for("schedule")
        assert schedule["schedule_id"] == new_id
        assert set(schedule["site_ids"]) == {
            s.id for s in store.fleet.sites if str(s.market) == "CAISO"
        }
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(alerts).values(
                    site_id=site.id,
                    kind="cell_overtemp",
                    severity="critical",
                    opened_at=dt.datetime.now(dt.UTC),
                    detail={"cell_t_max_c": 61.0},
                )
            )
        alarm = reader.wait_for("alarm")
        assert alarm["kind"] == "cell_overtemp"
        assert alarm["severity"] == "critical"
        now = dt.datetime.now(dt.UTC)
        with store.engine.begin() as conn:
            conn.execute(
                sa.insert(setpoints).values(
                    cmd_id="cmd-test-1",
                    site_id=site.id,
                    issued_ts=now,
                    valid_from=now,
                    expires_at=now + dt.timedelta(minutes=5),
                    p_ac_w_setpoint=-2.5e6,
                    schedule_version=1,
                    status="sent",
                )
            )
        setpoint = reader.wait_for("setpoint")
        assert setpoint["cmd_id"] == "cmd-test-1"
        assert setpoint["p_mw"] == pytest.approx(-2.5)
        reader.close()


def test_event_bus_drops_oldest_when_subscriber_queue_full() -> None:
    bus = EventBus(queue_size=3, replay_size=10)
    q = bus.subscribe()
    for i in range(5):
        bus.publish("state", {"i": i})
    assert bus.dropped == 2
    assert [q.get_nowait().data["i"] for _ in range(3)] == [2, 3, 4]
    resumed = bus.subscribe(last_event_id=3)
    assert [resumed.get_nowait().id for _ in range(resumed.qsize())] == [4, 5]


@pytest.mark.integration
def test_readyz_reports_broker_up_when_mosquitto_runs(
    store: Store, mosquitto: Broker
) -> None:
    with (
        live_server(store.url, mqtt_url=mosquitto.url) as server,
        http_client(server) as client,
    ):
        deadline = time.monotonic() + 10
        response = client.get("/readyz")
        while response.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            response = client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"store": True, "broker": True}


def test_readyz_answers_503_naming_broker_when_broker_down(store: Store) -> None:
    port = free_port()
    with (
        live_server(store.url, mqtt_url=f"mqtt://127.0.0.1:{port}") as server,
        http_client(server) as client,
    ):
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["checks"] == {"store": True, "broker": False}
        assert str(port) in body["detail"]["broker"]


def test_readyz_answers_503_when_store_unreachable(tmp_path: object) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with live_server(url) as server, http_client(server) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["store"] is False
        assert client.get("/healthz").status_code == 200
