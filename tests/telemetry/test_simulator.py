"""The site simulator: LFP physics, and gateways against a real broker and ingest."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from paho.mqtt.enums import CallbackAPIVersion

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.telemetry import record_setpoint
from telemetry.errors import TelemetryInputError
from telemetry.lfp import bms_current_limits_a, lfp_ocv_v, soc_step, temperature_step
from telemetry.registry import SiteRegistry, site_spec_from
from telemetry.setpoints import SetpointPublisher, build_setpoint
from telemetry.simulator import SimOptions, Simulator
from tests.conftest import Broker
from tests.factories import make_fleet
from tests.telemetry.helpers import IngestProcess, count, now_ms, rows, wait_until


def test_lfp_ocv_is_monotonic_with_flat_plateau_when_sampled() -> None:
    values = [lfp_ocv_v(s / 100) for s in range(101)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[0] == pytest.approx(2.5)
    assert values[100] == pytest.approx(3.6)
    assert values[70] - values[30] < 0.06  # the LFP plateau


def test_soc_step_applies_efficiencies_when_charging_and_discharging() -> None:
    # 10 MW for 1 h on 100 MWh: discharge takes 10/0.95, charge stores 10*0.95
    assert soc_step(0.5, 10.0, 3600, 100.0, 0.95, 0.95) == pytest.approx(
        0.5 - 0.10 / 0.95
    )
    assert soc_step(0.5, -10.0, 3600, 100.0, 0.95, 0.95) == pytest.approx(0.5 + 0.095)
    assert soc_step(0.99, -10.0, 3600, 100.0, 0.95, 0.95) == 1.0


def test_temperature_step_approaches_steady_state_when_held_at_rated_power() -> None:
    temp = 25.0
    for _ in range(200):
        temp = temperature_step(temp, 25.0, 10.0, 10.0, 600.0)
    assert temp == pytest.approx(37.0, abs=0.01)


def test_bms_limits_taper_when_full_empty_or_cold() -> None:
    assert bms_current_limits_a(0.5, 20, 30, 1000) == (1000, 1000)
    cha, dis = bms_current_limits_a(0.97, 20, 30, 1000)
    assert cha == pytest.approx(300)
    assert dis == 1000
    assert bms_current_limits_a(0.5, -1, 5, 1000)[0] == 0.0
    assert bms_current_limits_a(0.02, 20, 30, 1000)[1] == pytest.approx(200)


def test_build_setpoint_refuses_when_outside_site_limits() -> None:
    spec = site_spec_from(make_fleet(1).sites[0])
    now = now_ms()
    with pytest.raises(TelemetryInputError, match="p_ac_w_setpoint=20000000"):
        build_setpoint(
            spec,
            p_ac_w_setpoint=20e6,
            issued_ts=now,
            valid_from=now,
            expires_at=now + 1000,
        )
    with pytest.raises(TelemetryInputError, match="soc_min_pct=1"):
        build_setpoint(
            spec,
            p_ac_w_setpoint=1e6,
            issued_ts=now,
            valid_from=now,
            expires_at=now + 1000,
            soc_min_pct=1,
        )


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(2))
    engine.dispose()
    return url


@pytest.fixture
def ingest(
    store_url: str, mosquitto: Broker, tmp_path: Path
) -> Iterator[IngestProcess]:
    proc = IngestProcess(
        store_url,
        mosquitto.url,
        tmp_path / "ingest.log",
        client_id=f"ingest-{tmp_path.name[-20:]}",
        extra=("--reorder-timeout-s", "1"),
    ).start()
    yield proc
    proc.stop()


@pytest.mark.integration
@pytest.mark.slow
def test_simulator_fills_store_and_backfills_lost_uplinks_when_run(
    store_url: str, mosquitto: Broker, ingest: IngestProcess
) -> None:
    specs = [site_spec_from(s) for s in make_fleet(2).sites]
    sim = Simulator(
        specs, mosquitto.url, SimOptions(rate_hz=20, seed=3, uplink_loss=0.05)
    )
    report = sim.run(duration_s=4)
    assert report.published > 250
    assert report.acked == report.published
    total = sum(gw.seq[dev] - 1 for gw in sim.gateways for dev in gw.devices)

    # lost uplinks reach the store only through backfill, which needs live gateways:
    # bring the same gateways (history buffer, seqs) back to answer the requests
    sim2 = Simulator(specs, mosquitto.url, SimOptions(rate_hz=1, seed=3))
    for old, new in zip(sim.gateways, sim2.gateways, strict=True):
        new.history, new.seq, new.last_ts = old.history, old.seq, old.last_ts
    runner = threading.Thread(target=sim2.run, kwargs={"duration_s": 30})
    runner.start()
    try:
        # every sample of the first run, lost uplinks included, ends up stored once
        wait_until(
            lambda: (
                sum(
                    count(
                        store_url,
                        f"SELECT count(*) FROM tlm_measurements WHERE site_id='{gw.spec.site_id}' "
                        f"AND dev_id='{dev}' AND seq < {gw.seq[dev]}",
                    )
                    for gw in sim.gateways
                    for dev in gw.devices
                )
                >= total
            ),
            40,
            "every simulated sample, backfilled ones included",
        )
    finally:
        sim2.stop()
        runner.join(30)
    hist = count(store_url, "SELECT count(*) FROM tlm_measurements WHERE hist")
    assert hist > 0
    sessions = rows(store_url, "SELECT site_id FROM tlm_site_sessions ORDER BY site_id")
    assert sessions == [("site-01",), ("site-02",)]
    bad = rows(store_url, "SELECT reason, detail FROM tlm_quarantine")
    assert bad == []


@pytest.mark.integration
@pytest.mark.slow
def test_setpoint_is_applied_and_audited_when_sent_to_simulated_site(
    store_url: str, mosquitto: Broker, ingest: IngestProcess
) -> None:
    specs = [site_spec_from(s) for s in make_fleet(1).sites]
    sim = Simulator(
        specs, mosquitto.url, SimOptions(rate_hz=10, seed=1, local_amplitude=0.0)
    )
    runner = threading.Thread(target=sim.run, kwargs={"duration_s": 25})
    runner.start()
    engine = make_engine(store_url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="dispatcher-test",
        protocol=mqtt.MQTTv5,
    )
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        gw = sim.gateways[0]
        wait_until(
            lambda: gw.client.is_connected() and gw.published > 0, 15, "gateway up"
        )

        def record(sp: object) -> None:
            with engine.begin() as conn:
                record_setpoint(conn, setpoint=sp)  # type: ignore[arg-type]

        publisher = SetpointPublisher(client, SiteRegistry.of(specs), record=record)
        now = now_ms()
        sp = build_setpoint(
            specs[0],
            p_ac_w_setpoint=4e6,
            issued_ts=now,
            valid_from=now,
            expires_at=now + 4_000,
            ramp_w_per_s=4e6,
        )
        publisher.send(sp, now_ms=now).wait_for_publish(5)
        status = f"SELECT status FROM setpoints WHERE cmd_id='{sp.cmd_id}'"
        wait_until(lambda: rows(store_url, status) == [("applied",)], 20, "ack applied")
        wait_until(lambda: gw.state.p_mw > 3.9, 10, "the site to ramp to 4 MW")
        wait_until(
            lambda: gw.state.mode == "hold", 10, "expiry to fall back to hold SoC"
        )
        wait_until(lambda: abs(gw.state.p_mw) < 1e-6, 10, "power back to zero")
        with engine.connect() as conn:
            actions = (
                conn.execute(
                    sa.text(
                        "SELECT action FROM audit_log WHERE object_id = :c ORDER BY id"
                    ),
                    {"c": sp.cmd_id},
                )
                .scalars()
                .all()
            )
        assert actions == ["setpoint.sent", "setpoint.accepted", "setpoint.applied"]
    finally:
        sim.stop()
        runner.join(30)
        client.disconnect()
        client.loop_stop()
        engine.dispose()
        time.sleep(0.1)


def test_gateway_ages_capacity_through_hook_when_minutes_pass() -> None:
    import random

    from telemetry.simulator import SiteGateway

    spec = site_spec_from(make_fleet(1).sites[0])
    calls: list[tuple[float, float, float]] = []

    def aging(t_days: float, throughput_mwh: float, soc: float) -> float:
        calls.append((t_days, throughput_mwh, soc))
        return 0.8

    gw = SiteGateway(
        spec, "mqtt://127.0.0.1:1", SimOptions(), random.Random(0), aging=aging
    )
    start = gw.started_ms
    for k in range(1, 130):
        gw.step(1.0, start + k * 1000)
    assert calls, "the aging hook was never called"
    assert gw.state.capacity_fraction == 0.8
    assert gw.measurements(start + 130_000)["bank1"]["soh_pct"] == 80.0


def test_simulator_builds_one_aging_hook_per_site_when_factory_given() -> None:
    specs = [site_spec_from(s) for s in make_fleet(2).sites]
    made: list[str] = []

    def factory(spec: object) -> object:
        made.append(spec.site_id)  # type: ignore[attr-defined]
        return lambda t, thr, soc: 1.0

    Simulator(specs, "mqtt://127.0.0.1:1", aging=factory)  # type: ignore[arg-type]
    assert made == ["site-01", "site-02"]
