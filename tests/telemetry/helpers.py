"""Helpers for the telemetry tests: payload builders, an ingest subprocess, a publisher."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.store.engine import make_engine
from telemetry.registry import SiteRegistry, SiteSpec

REPO = Path(__file__).resolve().parents[2]
BESSFLEET = REPO / ".venv" / "bin" / "bessfleet"
GROUP = "ercot"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def registry(n: int = 3) -> SiteRegistry:
    """Sites site-01… as the factories' fleet has them (10 MW / 20 MWh, 416 s)."""
    return SiteRegistry.of(
        SiteSpec(
            site_id=f"site-{i + 1:02d}",
            group=GROUP,
            energy_mwh=20.0,
            charge_mw=10.0,
            discharge_mw=10.0,
            cells_in_series=416,
            strings=53,
        )
        for i in range(n)
    )


def bank_m(**overrides: Any) -> dict[str, Any]:
    """Valid battery measurements (discharging 2 MW at 50 % SoC)."""
    m: dict[str, Any] = {
        "soc_pct": 50.0,
        "p_dc_w": 2_000_000.0,
        "v_dc_v": 1372.8,
        "i_dc_a": 1456.9,
        "cell_v_max_v": 3.31,
        "cell_v_min_v": 3.29,
        "cell_t_max_c": 28.0,
        "cell_t_min_c": 24.0,
    }
    m.update(overrides)
    return {k: v for k, v in m.items() if v is not _DROP}


_DROP = object()
DROP = _DROP


def tlm(
    site: str = "site-01",
    dev: str = "bank1",
    seq: int = 1,
    ts: int | None = None,
    sid: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A valid tlm payload (as a dict)."""
    body: dict[str, Any] = {
        "v": 1,
        "site": site,
        "dev": dev,
        "sid": sid,
        "seq": seq,
        "ts": ts if ts is not None else now_ms() - 1000,
        "m": bank_m() if dev.startswith("bank") else {"p_ac_w": 1_000_000.0},
    }
    body.update(extra)
    return body


def topic(site: str, kind: str, dev: str | None = None, group: str = GROUP) -> str:
    base = f"bess/v1/{group}/{site}/up/{kind}"
    return f"{base}/{dev}" if dev else base


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def wait_until(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def count(url: str, sql: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    except sa.exc.OperationalError:
        return -1
    finally:
        engine.dispose()


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


RUNNING: list[IngestProcess] = []
"""Every ingest started; the package conftest stops leftovers after each test."""


class IngestProcess:
    """``bessfleet ingest`` as a real subprocess."""

    def __init__(
        self,
        db_url: str,
        mqtt_url: str,
        log: Path,
        client_id: str = "ingest-test",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.args = [
            str(BESSFLEET),
            "ingest",
            "--db",
            db_url,
            "--mqtt-url",
            mqtt_url,
            "--client-id",
            client_id,
            "--batch-ms",
            "50",
            *extra,
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IngestProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                self.args, stdout=fh, stderr=subprocess.STDOUT, env=env
            )
        RUNNING.append(self)
        try:
            wait_until(
                lambda: (
                    b"subscribed to" in self.log.read_bytes()
                    or (self.proc is not None and self.proc.poll() is not None)
                ),
                90,
                "ingest to connect",
            )
        except AssertionError:
            self.stop()
            raise
        assert self.proc.poll() is None, self.log.read_text()[-3000:]
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Publisher:
    """A QoS 1 MQTT 5 publisher with a persistent session that survives broker restarts."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.2, 2)
        self.acked: set[int] = set()
        self.refused: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect(host, port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "publisher to connect")

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        with self._lock:
            self.acked.add(mid)
            if getattr(rc, "is_failure", False):
                self.refused.add(mid)

    def publish_all(
        self,
        messages: Iterable[tuple[str, bytes]],
        pause_every: int = 0,
        pause_s: float = 0.0,
    ) -> list[int]:
        mids = []
        for i, (t, payload) in enumerate(messages):
            info = self.client.publish(t, payload, qos=1)
            mids.append(info.mid)
            if pause_every and i % pause_every == pause_every - 1:
                time.sleep(pause_s)
        return mids

    def wait_acked(self, mids: list[int], timeout_s: float = 60) -> None:
        wait_until(
            lambda: set(mids) <= self.acked,
            timeout_s,
            "broker PUBACKs for every message",
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
