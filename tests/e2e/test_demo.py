"""End to end: ``bessfleet demo`` runs the production operator and reports from the store."""

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
import pytest
import sqlalchemy as sa

from dispatch.markets import load_market_rules
from fleet.data.prices import import_price_csvs, import_replay_prices
from fleet.data.sample import SAMPLE_DIR
from fleet.demo.run import DemoOptions
from fleet.errors import FleetInputError
from fleet.ops.settlement import load_settlements
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.tables import setpoints
from telemetry.broker import start_broker
from telemetry.errors import TelemetryInputError

REPO = Path(__file__).resolve().parents[2]
BESSFLEET = [sys.executable, "-c", "from fleet.cli import main; main()"]
FLEET = REPO / "deploy" / "examples" / "fleet.toml"


def _port_open(url: str) -> bool:
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host.split("@")[-1], int(port))) == 0


def _env(tmp_path: Path) -> dict[str, str]:
    """A bare clone's environment: no shared data folder, no configured broker."""
    env = dict(os.environ)
    env.pop("BESSFLEET_MQTT_URL", None)
    env["BESSFLEET_SHARED_DATA_DIR"] = str(tmp_path / "no-shared-data")
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "160"
    return env


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("speed", 5.0, "--speed=5.0"),
        ("days", 0, "--days=0"),
        ("sites", 0, "--sites=0"),
        ("rate_hz", 1000.0, "--rate-hz=1000.0"),
        ("prices_csv", (Path("absent.csv"),), "--prices: no such file: absent.csv"),
    ],
)
def test_demo_options_check_names_the_option_when_out_of_range(
    field: str, value: object, match: str
) -> None:
    options = DemoOptions(fleet_file=Path("f.toml"), prices_dir=Path("."))
    bad = dataclasses.replace(options, **{field: value})
    with pytest.raises(FleetInputError, match=re.escape(match)):
        bad.check()


def test_replay_prices_import_from_the_shipped_sample_covers_both_markets(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    counts = import_replay_prices(
        make_engine(url), SAMPLE_DIR, dt.date(2025, 4, 9), dt.date(2025, 4, 9)
    )
    # 32 days x 24 h of DA energy at 7 ERCOT nodes at least, and CAISO's series
    assert counts["ERCOT"] >= 32 * 24 * 7
    assert counts["CAISO"] >= 32 * 24 * 3
    with pytest.raises(FleetInputError, match="no ERCOT prices"):
        import_replay_prices(
            make_engine(url), SAMPLE_DIR, dt.date(2030, 1, 1), dt.date(2030, 1, 1)
        )


def test_replay_prices_import_from_shared_data_shifts_caiso_onto_the_day(
    tmp_path: Path, shared_data: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    day = dt.date(2025, 4, 9)
    counts = import_replay_prices(engine, shared_data, day, day, history_days=2)
    assert counts["ERCOT"] > 0
    assert counts["CAISO"] > 0
    with engine.connect() as conn:
        caiso = conn.execute(
            sa.text("SELECT min(ts), max(ts) FROM prices WHERE market = 'CAISO'")
        ).one()
    # 2020-04-05 .. 2020-04-12 of the example year, replayed 1,827 days later
    assert str(caiso[0]).startswith("2025-04-05")
    assert str(caiso[1]).startswith("2025-04-11")


def test_price_csv_import_validates_and_stores_a_users_prices(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    good = SAMPLE_DIR / "caiso" / "caiso_reg_up_down_2020_hourly_replayed_2025.csv.gz"
    assert import_price_csvs(engine, [good]) > 1000
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_utc,market,node\n2025-04-09T00:00:00Z,ERCOT,HB_WEST\n")
    with pytest.raises(FleetInputError, match="product"):
        import_price_csvs(engine, [bad])


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
    with pytest.raises(TelemetryInputError, match="broker='emqx'"):
        start_broker(tmp_path, prefer="emqx")


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_settles_a_day_through_fleet_ops_and_reports_the_store_when_run_with_exit(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    summary_path = tmp_path / "summary.json"
    args = ["demo", "--fleet", str(FLEET), "--sites", "4", "--speed", "720"]
    args += ["--exit", "--folder", str(run), "--summary-json", str(summary_path)]
    proc = subprocess.run(
        [*BESSFLEET, *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    summary = json.loads(summary_path.read_text())
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY_JSON "))
    assert json.loads(line.removeprefix("SUMMARY_JSON ")) == summary
    # a bare clone: the shipped sample, and the summary says so
    assert "the sample shipped with bessfleet" in summary["price_source"]
    assert "price data" in proc.stdout
    assert "shortfall charge" in proc.stdout
    assert summary["failed_steps"] == []

    # Every figure is the settlements table's, as fleet.ops.settlement stored it.
    engine = make_engine(f"sqlite:///{run / 'store.sqlite'}")
    rows = load_settlements(engine)
    assert set(rows["operating_day"].astype(str)) == {"2025-04-09"}
    assert set(rows["site_id"]) == set(summary["sites"])
    for (market, day), part in rows.groupby(["market", "operating_day"]):
        items = part.groupby("item")["amount_usd"].sum().round(2).to_dict()
        assert summary["revenue_usd"][f"{market} {day}"] == pytest.approx(items)
    products = {
        p for m in set(rows["market"]) for p in load_market_rules(m).reserve_services
    }
    reserve = rows[rows["item"].isin(products)]
    short = rows[rows["item"].str.startswith("as_shortfall")]
    assert summary["awarded_mwh"] > 0
    assert summary["awarded_mwh"] == pytest.approx(reserve["quantity"].sum(), abs=1e-3)
    assert summary["shortfall_mwh"] == pytest.approx(short["quantity"].sum(), abs=1e-3)
    assert summary["shortfall_usd"] == pytest.approx(-short["amount_usd"].sum())

    # Every site was commanded every interval of the day and its gateway answered.
    with engine.connect() as conn:
        sent = conn.execute(sa.select(setpoints.c.site_id, setpoints.c.status)).all()
    for site_id in summary["sites"]:
        mine = [status for sid, status in sent if sid == site_id]
        assert len(mine) >= 96, site_id
        assert summary["setpoints"][site_id] == len(mine)
        assert {"accepted", "applied"} & set(mine), (site_id, set(mine))
    # --exit leaves nothing running: broker and API ports are closed
    broker_url = summary["broker"].split()[-1]
    assert not _port_open(broker_url)
    assert not _port_open(summary["dashboard_url"].rstrip("/"))


@pytest.mark.integration
@pytest.mark.e2e
@pytest.mark.parametrize("broker", ["auto", "amqtt"])
def test_demo_stops_everything_it_started_when_interrupted(
    tmp_path: Path, broker: str
) -> None:
    # the operator line comes after every client (ingest, gateways, setpoints) connected
    args = ["demo", "--fleet", str(FLEET), "--sites", "2", "--folder", str(tmp_path)]
    args += ["--broker", broker]
    proc = subprocess.Popen(
        [*BESSFLEET, *args],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            seen.append(line)
            if "operator:" in line or time.monotonic() > deadline:
                break
        assert any("operator:" in x for x in seen), seen
        api = re.search(r"api: (http://\S+)", "".join(seen))
        assert api is not None, seen
        # the API and dashboard answer while the operator runs
        assert httpx.get(f"{api.group(1)}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{api.group(1)}/", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    urls = re.findall(r"(?:mqtt|http)://127\.0\.0\.1:\d+", "".join(seen))
    assert len(urls) == 2
    for url in urls:
        assert not _port_open(url), url
