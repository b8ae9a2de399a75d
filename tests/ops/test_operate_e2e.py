"""Two operating days of the 12-site fleet, unattended, from one command.

PostgreSQL, a real Mosquitto, real ERCOT prices (and the CAISO example year replayed on
the same weekdays), simulated gateways of all 12 sites (front- and behind-the-meter)
and an ingest worker, all on one accelerated clock shared with ``bessfleet operate``
through ``--clock-start/--speed/--clock-anchor``. Nothing is done by hand between the
steps: the test starts the world and the operator, waits, and reads the record.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from fleet.fleetfile import load_fleet
from fleet.ops.clock import AcceleratedClock
from fleet.ops.runs import load_intervals, load_runs
from fleet.ops.settlement import load_settlements
from fleet.store.alerts import list_alerts
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.tables import bid_sets, setpoints
from tests.conftest import REPO_ROOT, _create_pg_database, _drop_pg_database
from tests.ops.harness import World, import_replay_prices

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
]

FLEET = REPO_ROOT / "deploy" / "examples" / "fleet.toml"
SPEED = 360.0  # a 15-minute interval every 2.5 wall seconds
START = dt.datetime(
    2025, 4, 8, 14, 20, tzinfo=dt.UTC
)  # ERCOT 09:20 CDT, CAISO 07:20 PDT
DAYS = (dt.date(2025, 4, 9), dt.date(2025, 4, 10))
STEPS = ("forecast", "dayahead", "export", "awards", "intraday", "settle")


@pytest.fixture
def pg_url(pg_server_url: str):
    url, name = _create_pg_database(pg_server_url)
    try:
        yield url
    finally:
        _drop_pg_database(pg_server_url, name)


def test_operator_runs_two_days_for_every_site_unattended(
    own_broker, pg_url, shared_data, tmp_path: Path
) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    fleet = load_fleet(FLEET)
    save_fleet(engine, fleet)
    import_replay_prices(engine, shared_data, DAYS[0], DAYS[-1])
    anchor = time.time() + 5.0
    clock = AcceleratedClock(START, SPEED, wall_anchor_s=anchor)
    world = World(
        fleet,
        own_broker.url,
        engine,
        clock,
        shared_data,
        soc_initial={s.id: s.battery.soc_initial for s in fleet.sites},
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "fleet",
        "operate",
        "--fleet",
        str(FLEET),
        "--db",
        pg_url,
        "--mqtt",
        own_broker.url,
        "--forecast",
        "naive",
        "--days",
        str(len(DAYS)),
        "--speed",
        str(SPEED),
        "--clock-start",
        START.isoformat(),
        "--clock-anchor",
        str(anchor),
        # Samples every 1/8 wall second are 45 simulated seconds apart at this speed,
        # and ingest commits take a few hundred wall ms: 2.5 wall seconds of silence.
        "--stale-after-s",
        "900",
        # The production re-dispatch: a 15-minute model of the rest of the day (an
        # hourly model would trade a quarter's reserve against the hour's energy).
        "--solve-time-limit-s",
        "1.0",
        # Plan each interval 10 simulated minutes ahead (1.7 wall seconds): its
        # setpoints are at the sites before it starts and take effect at its start.
        "--lead-s",
        "600",
        "--data-dir",
        str(shared_data),
        "--export-dir",
        str(tmp_path / "exports"),
    ]
    world.start()
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=1600, check=False
        )
    finally:
        world.stop()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]

    markets = {"ERCOT": [s for s in fleet.sites if s.market.value == "ERCOT"]}
    markets["CAISO"] = [s for s in fleet.sites if s.market.value == "CAISO"]
    assert any(s.is_btm for s in markets["ERCOT"])
    assert any(s.is_btm for s in markets["CAISO"])
    runs = load_runs(engine)
    for market, sites in markets.items():
        for day in DAYS:
            # Every step of the day ran, once, and is recorded done.
            done = runs[(runs["market"] == market) & (runs["operating_day"] == day)]
            status = dict(zip(done["step"], done["status"], strict=True))
            errors = dict(zip(done["step"], done["error"], strict=True))
            assert all(status.get(step) == "done" for step in STEPS), (
                market,
                day,
                {s: (status.get(s), errors.get(s)) for s in STEPS},
            )
            # Bids accepted by the project's own check; none refused.
            with engine.connect() as conn:
                sets = (
                    conn.execute(
                        sa.select(bid_sets.c.status).where(
                            bid_sets.c.market == market, bid_sets.c.operating_day == day
                        )
                    )
                    .scalars()
                    .all()
                )
            assert sets
            assert set(sets) == {"accepted"}
            # Every site, FOM and BTM, was commanded in every interval of the day.
            intervals = load_intervals(engine, market=market, day=day)
            missing = sorted(set(range(96)) - set(intervals["interval_index"]))
            assert not missing, (market, day, missing, proc.stderr[-3000:])
            for row in intervals.itertuples(index=False):
                assert set(row.setpoints) == {s.id for s in sites}, row.interval_index
            assert (intervals["status"] != "hold").all()
            # Settled from metered telemetry; shortfall small against awarded MW-h.
            detail = done[done["step"] == "settle"]["detail"].iloc[0]
            assert detail["awarded_mwh"] > 0
            short = load_settlements(engine, market=market, start=day, end=day)
            short = short[short["item"].str.startswith("as_shortfall")]
            assert detail["shortfall_mwh"] <= 0.01 * detail["awarded_mwh"], (
                market,
                day,
                detail,
                short[["site_id", "item", "amount_usd", "quantity", "detail"]].to_dict(
                    "records"
                ),
            )
    # Nothing failed on the way (a failed step raises an alert until it is done).
    failed = [a.detail for a in list_alerts(engine) if a.kind == "ops_step_failed"]
    assert not failed, failed
    settled = load_settlements(engine)
    assert set(settled["operating_day"]) == set(DAYS)
    for site in fleet.sites:
        items = set(settled[settled["site_id"] == site.id]["item"])
        expected = (
            {"btm_bill", "btm_savings"}
            if site.is_btm
            else {"da_energy", "rt_deviation"}
        )
        assert expected <= items, (site.id, items)
    # The gateways got and acknowledged the commands: the store has every one of them.
    with engine.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(sa.select(setpoints.c.site_id, setpoints.c.status)).all(),
            columns=["site_id", "status"],
        )
    per_site = rows.groupby("site_id").size()
    for site in fleet.sites:
        assert per_site.get(site.id, 0) >= 96 * len(DAYS), site.id
        received = world.gateway(site.id).seen_cmds
        assert len(received) >= 96 * len(DAYS), site.id
    # Followed: the gateway applied the command (an `expired` ack would mean it
    # arrived too late to be used).
    applied = rows["status"].isin(["accepted", "applied"]).mean()
    assert applied > 0.99, rows["status"].value_counts().to_dict()
    # The submission files were written for every market and day.
    for market in markets:
        for day in DAYS:
            assert list(
                (tmp_path / "exports" / market.lower() / day.isoformat()).glob("*")
            )
