"""End to end: ``bessfleet demo`` plays the whole loop and stops cleanly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from dispatch.bidcheck import Refusal
from dispatch.bids import Bid, BidSet
from fleet.demo.broker import start_broker
from fleet.demo.data import find_price_files
from fleet.demo.market import cleared_mw
from fleet.demo.plant import DemoClock
from fleet.demo.run import DemoOptions, without_refused
from fleet.errors import FleetInputError

REPO = Path(__file__).resolve().parents[2]
BESSFLEET = [sys.executable, "-c", "from fleet.cli import main; main()"]


def _port_open(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host.split("@")[-1], int(port))) == 0


@pytest.fixture(scope="module")
def price_csvs(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """The shared price history cut to the demo's training window (a user's --prices)."""
    out = tmp_path_factory.mktemp("prices")
    ercot = shared_data / "ercot_rt_da_hourly_15sp_2024_2026"
    caiso = shared_data / "caiso_dervet_example_2020"
    if not ercot.is_dir() or not caiso.is_dir():
        pytest.skip("the ERCOT 2024-2026 and CAISO 2020 price folders are needed")
    paths = []
    for unit, files in (
        (
            "price_usd_per_mwh",
            [*ercot.glob("ercot_rt_da*.csv.gz"), *caiso.glob("*energy*.csv")],
        ),
        (
            "price_usd_per_mw",
            [*ercot.glob("ercot_dam_as*.csv.gz"), *caiso.glob("*reg*.csv")],
        ),
    ):
        frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
        ts = pd.to_datetime(frame["timestamp_utc"], utc=True)
        keep = (frame["market"] == "CAISO") | (
            ts >= pd.Timestamp("2025-09-01", tz="UTC")
        )
        keep &= frame["product"] != "rt_energy"
        path = out / f"prices_{unit}.csv"
        frame[keep].to_csv(path, index=False)
        paths.append(path)
    return paths


def _demo_args(tmp_path: Path, shared_data: Path, price_csvs: list[Path]) -> list[str]:
    args = [
        "demo",
        "--fleet",
        str(REPO / "deploy/examples/fleet.toml"),
        "--prices-dir",
        str(shared_data),
        "--folder",
        str(tmp_path / "run"),
    ]
    for path in price_csvs:
        args += ["--prices", str(path)]
    return args


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BESSFLEET_MQTT_URL", None)
    env["COLUMNS"] = "120"
    return env


@pytest.mark.parametrize(
    ("price", "expected"),
    [(-5.0, -50.0), (10.0, -50.0), (20.0, 0.0), (45.0, 30.0), (500.0, 50.0)],
)
def test_cleared_mw_takes_largest_point_at_or_below_price_when_clearing(
    price: float, expected: float
) -> None:
    curve = ((-50.0, 10.0), (0.0, 20.0), (30.0, 40.0), (50.0, 90.0))
    assert cleared_mw(curve, price) == expected


def test_demo_clock_maps_intervals_to_wall_time_when_accelerated() -> None:
    clock = DemoClock(t0_ms=1_000_000, speed=720.0, interval_s=900.0)
    assert clock.wall_ms_of(0) == 1_000_000
    assert clock.wall_ms_of(4) == 1_000_000 + 5_000  # an hour in 5 s
    assert clock.interval_at(1_000_000 + 2_500) == pytest.approx(2.0)
    assert clock.sim_days(1_000_000 + 120_000) == pytest.approx(1.0)
    assert clock.sim_days(0) == 0.0


def test_without_refused_drops_only_the_refused_site_hour_product_when_trimming() -> (
    None
):
    bids = (
        Bid("a", "energy", 1, ((-1.0, 1.0), (1.0, 2.0))),
        Bid("a", "reg_up", 1, ((1.0, 0.5),)),
        Bid("a", "reg_up", 2, ((1.0, 0.5),)),
        Bid("b", "reg_up", 1, ((1.0, 0.5),)),
    )
    bid_set = BidSet("ERCOT", dt.date(2026, 2, 13), bids)
    refusals = [Refusal("a", 1, "reg_up", "energy_up_cover", "site a, hour 1")]
    kept = without_refused(bid_set, refusals).bids
    assert [(b.site_id, b.product, b.hour_ending) for b in kept] == [
        ("a", "energy", 1),
        ("a", "reg_up", 2),
        ("b", "reg_up", 1),
    ]
    site_wide = [Refusal("a", None, None, "soc", "site a")]
    assert [b.site_id for b in without_refused(bid_set, site_wide).bids] == ["b"]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("hours", 0, "--hours=0"),
        ("hours", 25, "--hours=25"),
        ("speed", 0.5, "--speed=0.5"),
        ("sites", 0, "--sites=0"),
        ("rate_hz", 1000.0, "--rate-hz=1000.0"),
        ("resolve_every", 0, "--resolve-every=0"),
    ],
)
def test_demo_options_check_names_the_option_when_out_of_range(
    field: str, value: float, match: str
) -> None:
    options = DemoOptions(fleet_file=Path("f.toml"), prices_dir=Path("."))
    bad = dataclasses.replace(options, **{field: value})
    with pytest.raises(FleetInputError, match=re.escape(match)):
        bad.check()


def test_find_price_files_says_how_to_give_prices_when_folder_is_absent(
    tmp_path: Path,
) -> None:
    with pytest.raises(FleetInputError, match="--prices CSV"):
        find_price_files(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FleetInputError, match="holds no price CSV"):
        find_price_files(tmp_path / "empty")


def test_find_price_files_prefers_the_demo_folders_when_present(
    shared_data: Path,
) -> None:
    files = find_price_files(shared_data)
    folders = {f.parent.name for f in files}
    assert folders == {"ercot_rt_da_hourly_15sp_2024_2026", "caiso_dervet_example_2020"}


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["amqtt", "mosquitto"])
def test_start_broker_listens_and_stops_when_embedded(
    tmp_path: Path, kind: str
) -> None:
    if kind == "mosquitto" and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    broker = start_broker(tmp_path, prefer=kind)
    try:
        assert broker.kind == kind
        assert broker.protocol == ("3.1.1" if kind == "amqtt" else "5")
        assert _port_open(broker.url)
    finally:
        broker.stop()
    assert not _port_open(broker.url)
    broker.stop()  # idempotent


def test_start_broker_starts_nothing_when_a_broker_is_configured(
    tmp_path: Path,
) -> None:
    broker = start_broker(tmp_path, external_url="mqtt://broker.example:1883")
    assert broker.kind == "external"
    assert broker.url == "mqtt://broker.example:1883"
    assert not any(tmp_path.iterdir())
    with pytest.raises(FleetInputError, match="broker='emqx'"):
        start_broker(tmp_path, prefer="emqx")


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_summary_shows_every_site_dispatched_and_no_telemetry_lost_when_run_with_exit(
    tmp_path: Path, shared_data: Path, price_csvs: list[Path]
) -> None:
    summary_path = tmp_path / "summary.json"
    args = [
        *_demo_args(tmp_path, shared_data, price_csvs),
        "--hours",
        "3",
        "--speed",
        "1800",
        "--exit",
        "--summary-json",
        str(summary_path),
    ]
    proc = subprocess.run(
        [*BESSFLEET, *args],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    summary = json.loads(summary_path.read_text())
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY_JSON "))
    assert (
        json.loads(line.removeprefix("SUMMARY_JSON "))["net_usd"] == summary["net_usd"]
    )

    sites = summary["sites"]
    assert len(sites) == 12
    assert sorted(summary["sites_dispatched"]) == sorted(sites)
    assert set(summary["setpoints_received"]) == set(sites)
    assert all(n > 0 for n in summary["setpoints_received"].values())
    assert summary["setpoints_sent"] == 12 * 3 * 4
    assert summary["telemetry_published"] > 0
    assert summary["telemetry_stored"] > 0
    assert summary["telemetry_lost"] == 0
    assert summary["revenue_total_usd"] > 0
    assert summary["api_ok"] > 0
    assert summary["api_failed"] == 0
    assert summary["bids"] > 0
    assert summary["awards"] > 0
    assert summary["intraday_resolves"] == 2
    assert set(summary["days"]) == {"ERCOT", "CAISO"}
    # the terminal shows the table, the dashboard URL and the broker used
    assert "lost" in proc.stdout
    assert "dashboard: http://" in proc.stdout
    assert summary["broker"] in {"mosquitto", "amqtt"}
    # --exit leaves nothing running: broker and API ports are closed
    assert not _port_open(summary["broker_url"])
    assert not _port_open(summary["api_url"])


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.slow
def test_demo_stops_broker_and_api_when_interrupted_after_the_summary(
    tmp_path: Path, shared_data: Path, price_csvs: list[Path]
) -> None:
    args = [
        *_demo_args(tmp_path, shared_data, price_csvs),
        "--sites",
        "2",
        "--hours",
        "1",
        "--speed",
        "1800",
    ]
    proc = subprocess.Popen(
        [*BESSFLEET, *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    summary = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            if line.startswith("SUMMARY_JSON "):
                summary = json.loads(line.removeprefix("SUMMARY_JSON "))
            if "press Ctrl-C" in line or time.monotonic() > deadline:
                break
        assert summary is not None, proc.stderr.read() if proc.stderr else ""
        # the API stays up after the summary
        health = httpx.get(f"{summary['api_url']}/healthz", timeout=5)
        assert health.status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert summary["sites_dispatched"] == summary["sites"]
    assert not _port_open(summary["api_url"])
    assert not _port_open(summary["broker_url"])
