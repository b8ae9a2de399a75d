"""``dayahead run`` on a fresh store writes bids that ``bids push`` accepts, every day.

A new user's path, through the CLI: migrate, load the example fleet, import real
ERCOT prices — no forecasts stored — then for each day of a replayed month plan the day
and push its bids. Telemetry says something different every day (SoC anywhere in the
window, a few percent of fade), as it would on a real fleet; every bid set must pass
the project's own check.
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
import sqlalchemy as sa

from fleet.cli import main
from fleet.fleetfile import load_fleet
from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from fleet.store.tables import bid_sets
from fleet.store.telemetry_tables import tlm_latest
from tests.conftest import REPO_ROOT
from tests.ops.harness import import_replay_prices

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

FLEET = REPO_ROOT / "deploy" / "examples" / "fleet.toml"
FIRST = dt.date(2025, 4, 1)
DAYS = 30


def _telemetry(engine: sa.Engine, site_ids: list[str], rng: random.Random) -> None:
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    with engine.begin() as conn:
        conn.execute(sa.delete(tlm_latest))
        for sid in site_ids:
            soc = rng.uniform(5.0, 95.0)
            soh = rng.uniform(96.0, 100.0)
            conn.execute(
                sa.insert(tlm_latest).values(
                    site_id=sid,
                    dev_id="bank1",
                    ts_ms=now_ms,
                    seq=1,
                    sid=1,
                    q="good",
                    flags=0,
                    soc_pct=soc,
                    p_dc_w=0.0,
                    p_ac_w=None,
                    m={"soc_pct": soc, "soh_pct": soh},
                    updated_at_ms=now_ms,
                )
            )


def _cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_dayahead_bids_are_accepted_every_day_of_a_month(shared_data, tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    fleet = load_fleet(FLEET)
    save_fleet(engine, fleet)
    last = FIRST + dt.timedelta(days=DAYS - 1)
    import_replay_prices(engine, shared_data, FIRST, last, history_days=14)
    rng = random.Random(20250401)
    ercot = [s.id for s in fleet.sites if s.market.value == "ERCOT"]
    as_bids = 0
    for k in range(DAYS):
        day = FIRST + dt.timedelta(days=k)
        _telemetry(engine, ercot, rng)
        out = tmp_path / f"bids-{day}.json"
        code, text = _cli(
            [
                "dayahead",
                "run",
                "--fleet",
                str(FLEET),
                "--market",
                "ERCOT",
                "--day",
                day.isoformat(),
                "--db",
                url,
                "--forecast",
                "naive",
                "--data-dir",
                str(shared_data),
                "-o",
                str(out),
            ],
            capsys,
        )
        assert code == 0, (day, text)
        assert "refreshed forecasts" in text or "stored forecasts" in text, text
        bids = json.loads(out.read_text())["bids"]
        as_bids += sum(1 for b in bids if b["product"] != "energy")
        code, text = _cli(
            [
                "bids",
                "push",
                str(out),
                "--fleet",
                str(FLEET),
                "--day",
                day.isoformat(),
                "--db",
                url,
            ],
            capsys,
        )
        assert code == 0, (day, text)
        assert "accepted" in text
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(bid_sets.c.status)).scalars().all()
    assert statuses == ["accepted"] * DAYS
    assert as_bids > 0  # the plans carry reserves: the check had something to check


def test_dayahead_makes_model_forecasts_when_none_are_stored(
    shared_data, tmp_path, capsys
):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    fleet = load_fleet(FLEET)
    save_fleet(engine, fleet)
    day = dt.date(2025, 4, 10)
    import_replay_prices(engine, shared_data, day, day, history_days=150)
    _telemetry(engine, [s.id for s in fleet.sites], random.Random(1))
    code, text = _cli(
        [
            "dayahead",
            "run",
            "--fleet",
            str(FLEET),
            "--day",
            day.isoformat(),
            "--db",
            url,
            "--data-dir",
            str(shared_data),
        ],
        capsys,
    )
    assert code == 0, text
    assert "refreshed forecasts" in text
    with engine.connect() as conn:
        models = set(
            conn.execute(sa.text("SELECT DISTINCT model_version FROM price_forecasts"))
            .scalars()
            .all()
        )
    assert any(not m.startswith("naive") for m in models), models
