"""The market export: ERCOT and CAISO upload files from an accepted bid set and the plan."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import itertools
import json
from decimal import Decimal

import pytest

from dispatch.bidcheck import rule_refusals
from dispatch.bids import Bid, BidSet, build_bids, plan_hours, with_energy_prices
from dispatch.markets import load_market_rules
from dispatch.solve import solve
from fleet.errors import FleetInputError
from fleet.ops.bids import push_bid_set
from fleet.ops.dayahead import run_dayahead
from fleet.ops.export import NgrLimits, export_bid_set, market_tables, write_tables
from fleet.ops.scenario_builder import SiteState
from tests.ops.helpers import NODE, daily_prices, fleet, scenario

ERCOT = load_market_rules("ERCOT")
CAISO = load_market_rules("CAISO")
DAY = dt.date(2024, 7, 1)
IDS = {"site-01": "ERCOT_ESR_SITE_01", "site-02": "ERCOT_ESR_SITE_02"}

ERCOT_FILES = {
    "energy_bid_offer.csv": (
        "ResourceName",
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        *(f"{k}{j}" for j in range(1, 11) for k in ("MW", "Price")),
    ),
    "as_offer_up.csv": (
        "ResourceName",
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        "Block",
        "MW",
        "REGUP",
        "RRSPF",
        "RRSFF",
        "ECRS",
        "ONNS",
    ),
    "as_offer_down.csv": (
        "ResourceName",
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        "Block",
        "MW",
        "REGDN",
    ),
    "cop.csv": (
        "ResourceName",
        "TradeDate",
        "HourEnding",
        "IntervalStart",
        "Status",
        "HSL",
        "LSL",
        "HourBeginningPlannedSOC",
        "MinSOC",
        "MaxSOC",
        "REGUP",
        "RRSPF",
        "RRSFF",
        "ECRS",
        "ONNS",
        "REGDN",
    ),
}


def _plan(rules, *, n_sites=2, hours=24):
    scn = scenario(n_sites=n_sites, hours=hours)
    result = solve(scn)
    alts = []
    for factor in (0.7, 1.4):
        alt = with_energy_prices(
            scn, {NODE: [p * factor for p in scn.markets[NODE].energy]}
        )
        alts.append((alt, solve(alt)))
    bid_set = build_bids(scn, result, rules, DAY, alternatives=alts)
    return scn, result, bid_set


@pytest.fixture(scope="module")
def ercot_plan():
    return _plan(ERCOT)


@pytest.fixture(scope="module")
def ercot_tables(ercot_plan):
    scn, result, bid_set = ercot_plan
    return market_tables(bid_set, ERCOT, IDS, plan_hours(scn, result, ERCOT))


def _curves(table, points):
    """Read energy curves back from a written table: {hour_ending: ((MW, price), …)}."""
    _, rows = table
    out = {}
    for row in rows:
        curve = tuple(
            (float(row[f"MW{j}"]), float(row[f"Price{j}"]))
            for j in range(1, points + 1)
            if row[f"MW{j}"] != ""
        )
        out[int(row["HourEnding"])] = curve
    return out


def test_export_curves_pass_every_rule_check_when_read_back(ercot_plan, ercot_tables):
    scn, _, _ = ercot_plan
    for resource, site_id in (
        ("ERCOT_ESR_SITE_01", "site-01"),
        ("ERCOT_ESR_SITE_02", "site-02"),
    ):
        curves = _curves(ercot_tables[resource]["energy_bid_offer.csv"], 10)
        assert sorted(curves) == list(range(1, 25))
        bids = [Bid(site_id, "energy", h, c) for h, c in curves.items()]
        assert rule_refusals(bids, scn, ERCOT) == []
        for curve in curves.values():
            assert 2 <= len(curve) <= ERCOT.curve_max_points
            for (mw0, p0), (mw1, p1) in itertools.pairwise(curve):
                assert mw1 >= mw0
                assert p1 >= p0


def test_export_curves_have_charge_and_discharge_points_when_site_can_do_both(
    ercot_plan,
):
    _, result, bid_set = ercot_plan
    both = 0
    for bid in (b for b in bid_set.bids if b.product == "energy"):
        sched = result.sites[bid.site_id]
        h = bid.hour_ending - 1
        up = sched.reg_up_mw[h] + sched.spin_mw[h]
        lo = sched.reg_down_mw[h] - 10.0
        hi = 10.0 - up
        if lo < -ERCOT.curve_mw_step and hi > ERCOT.curve_mw_step:
            both += 1
            assert len(bid.curve) >= 3, bid
            assert bid.curve[0][0] < 0 < bid.curve[-1][0], bid
    assert both >= 1
    single = [b for b in bid_set.bids if b.product == "energy" and len(b.curve) < 2]
    assert single == []


def test_energy_only_curves_span_full_charge_to_full_discharge_in_steps():
    scn = scenario(services=("energy",))
    result = solve(scn)
    alts = [
        (alt, solve(alt))
        for alt in (
            with_energy_prices(scn, {NODE: [p * f for p in scn.markets[NODE].energy]})
            for f in (0.7, 1.4)
        )
    ]
    bid_set = build_bids(scn, result, ERCOT, DAY, alternatives=alts)
    curves = [b.curve for b in bid_set.bids if b.product == "energy"]
    assert len(curves) == 24
    for curve in curves:
        assert (curve[0][0], curve[-1][0]) == (-10.0, 10.0)
        # Full charge below the charge price, a step between, full discharge above.
        assert len(curve) >= 3, curve
        assert any(mw == 0.0 for mw, _ in curve) or any(
            a < 0 < b for (a, _), (b, _) in itertools.pairwise(curve)
        )


def test_export_rounds_mw_and_prices_to_the_markets_grid(ercot_tables):
    for named in ercot_tables.values():
        for name, (columns, rows) in named.items():
            for row in rows:
                for column in columns:
                    value = row[column]
                    if value == "":
                        # Unused curve points and services not offered stay empty.
                        assert column[:2] in ("MW", "Pr") or name.startswith("as_")
                        continue
                    if column.startswith("MW") or column in (
                        "HSL",
                        "LSL",
                        "MinSOC",
                        "MaxSOC",
                        "HourBeginningPlannedSOC",
                    ):
                        assert Decimal(value).as_tuple().exponent == -1, (name, value)
                    elif column.startswith("Price") and value:
                        assert Decimal(value).as_tuple().exponent == -2, (name, value)
                    elif column in ("REGUP", "RRSPF", "REGDN") and value:
                        decimals = 2 if "offer" in name else 1
                        assert Decimal(value).as_tuple().exponent == -decimals


def test_export_writes_the_documented_files_when_written(ercot_tables, tmp_path):
    header = {"schema": "bessfleet-market-export/1", "market": "ERCOT"}
    result = write_tables(ercot_tables, tmp_path / "ERCOT_20240701_v1", header)
    manifest = json.loads(result.manifest.read_text())
    assert [r["resource_id"] for r in manifest["resources"]] == [
        "ERCOT_ESR_SITE_01",
        "ERCOT_ESR_SITE_02",
    ]
    for entry in manifest["resources"]:
        assert sorted(entry["files"]) == sorted(ERCOT_FILES)
        for name, columns in ERCOT_FILES.items():
            path = result.folder / entry["resource_id"] / name
            data = path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["files"][name]["sha256"]
            rows = list(csv.DictReader(data.decode().splitlines()))
            assert tuple(csv.reader(data.decode().splitlines()).__next__()) == columns
            assert len(rows) == entry["files"][name]["rows"]
            assert {r["ResourceName"] for r in rows} <= {entry["resource_id"]}
            assert {r["TradeDate"] for r in rows} <= {"2024-07-01"}
            hours = [int(r["HourEnding"]) for r in rows]
            assert hours == sorted(hours)
        cop = list(
            csv.DictReader((result.folder / entry["resource_id"] / "cop.csv").open())
        )
        assert [int(r["HourEnding"]) for r in cop] == list(range(1, 25))
        assert cop[0]["IntervalStart"] == "2024-07-01T00:00-05:00"
        assert {
            (r["Status"], r["HSL"], r["LSL"], r["MinSOC"], r["MaxSOC"]) for r in cop
        } == {("ON", "10.0", "-10.0", "1.0", "19.0")}
        assert {r["ECRS"] for r in cop} == {"0.0"}
    with pytest.raises(
        FleetInputError, match="not empty; an export is not overwritten"
    ):
        write_tables(ercot_tables, result.folder, header)


def test_export_cop_carries_the_planned_soc_at_each_hour_beginning(
    ercot_plan, ercot_tables
):
    _, result, _ = ercot_plan
    _, rows = ercot_tables["ERCOT_ESR_SITE_02"]["cop.csv"]
    soc = result.sites["site-02"].soc
    for row in rows:
        h = int(row["HourEnding"]) - 1
        assert float(row["HourBeginningPlannedSOC"]) == pytest.approx(
            20.0 * soc[h], abs=0.05 + 1e-9
        )
        reg_up = result.sites["site-02"].reg_up_mw[h]
        assert reg_up - 0.1 < float(row["REGUP"]) <= reg_up + 1e-9


def test_export_links_upward_offers_in_blocks_and_keeps_reg_down_separate(ercot_tables):
    _, up = ercot_tables["ERCOT_ESR_SITE_01"]["as_offer_up.csv"]
    _, down = ercot_tables["ERCOT_ESR_SITE_01"]["as_offer_down.csv"]
    assert up
    for hour, rows in itertools.groupby(up, key=lambda r: r["HourEnding"]):
        rows = list(rows)
        assert [int(r["Block"]) for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) <= ERCOT.as_max_blocks
        for row in rows:
            # Without the enrollments, a block is offered to the products bid.
            priced = [c for c in ("REGUP", "RRSPF", "RRSFF", "ECRS", "ONNS") if row[c]]
            assert priced, (hour, row)
            assert set(priced) <= {"REGUP", "RRSPF"}
            assert row["ECRS"] == row["ONNS"] == row["RRSFF"] == ""
    assert all(r["REGDN"] != "" and float(r["MW"]) > 0 for r in down)


def test_export_refuses_when_a_bid_breaks_the_markets_rules():
    bad = BidSet("ERCOT", DAY, (Bid("site-01", "energy", 1, ((0.0, 20.0),)),))
    with pytest.raises(
        FleetInputError, match=r"curve_points: site site-01, hour_ending 1"
    ):
        market_tables(bad, ERCOT, IDS, ())
    off = BidSet(
        "ERCOT", DAY, (Bid("site-01", "energy", 1, ((0.0, 20.0), (4.06, 30.0))),)
    )
    with pytest.raises(FleetInputError, match="precision"):
        market_tables(off, ERCOT, IDS, ())
    ok = BidSet(
        "ERCOT", DAY, (Bid("site-01", "energy", 1, ((0.0, 20.0), (4.0, 30.0))),)
    )
    with pytest.raises(
        FleetInputError, match="site site-01: no planned SoC for the COP"
    ):
        market_tables(ok, ERCOT, IDS, ())
    with pytest.raises(FleetInputError, match="site site-01: no resource_id"):
        market_tables(ok, ERCOT, {}, ())


def test_export_caiso_writes_energy_bids_as_pairs_and_ngr_limits(tmp_path):
    scn, result, bid_set = _plan(CAISO, n_sites=1)
    ngr = {"site-01": NgrLimits(10.0, 1.0, 19.0, -10.0, 10.0)}
    tables = market_tables(
        bid_set,
        CAISO,
        {"site-01": "CAISO_NGR_SITE01"},
        plan_hours(scn, result, CAISO),
        ngr,
    )
    named = tables["CAISO_NGR_SITE01"]
    assert sorted(named) == ["as_bids.csv", "energy_bid.csv", "ngr.csv"]
    columns, _ = named["energy_bid.csv"]
    assert columns[-2:] == ("MW11", "Price11")
    curves = _curves(named["energy_bid.csv"], 11)
    assert len(curves) == 24
    bids = [Bid("site-01", "energy", h, c) for h, c in curves.items()]
    assert rule_refusals(bids, scn, CAISO) == []
    assert all(2 <= len(c) <= 11 for c in curves.values())
    _, as_rows = named["as_bids.csv"]
    keys = [(r["HourEnding"], r["Product"]) for r in as_rows]
    assert len(keys) == len(set(keys))
    assert {r["Product"] for r in as_rows} <= {"RU", "RD", "SR"}
    assert all(Decimal(r["MW"]).as_tuple().exponent == -2 for r in as_rows)
    assert named["ngr.csv"][1] == [
        {
            "ResourceID": "CAISO_NGR_SITE01",
            "TradeDate": "2024-07-01",
            "InitialSOC": "10.00",
            "MinSOC": "1.00",
            "MaxSOC": "19.00",
            "PMin": "-10.00",
            "PMax": "10.00",
        }
    ]
    header = {"market": "CAISO"}
    written = write_tables(tables, tmp_path / "CAISO", header)
    assert len(written.files) == 3


def _stored_day(engine, day):
    prices = {
        NODE: {
            "energy": daily_prices(24, spike=50.0),
            "reg_up": [6.0] * 24,
            "reg_down": [4.0] * 24,
            "spin": [3.0] * 24,
        }
    }
    states = {"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.3)}
    outcome = run_dayahead(
        engine,
        fleet(2),
        ERCOT,
        day,
        now=dt.datetime(2024, 7, 1, 14, tzinfo=dt.UTC),
        prices=prices,
        quantile_prices={"p10": {NODE: daily_prices(24, shift=-10)}},
        states=states,
    )
    return outcome


def test_export_bid_set_writes_the_accepted_version_with_the_stored_plan(
    engine, tmp_path
):
    day = dt.date(2024, 7, 2)
    with pytest.raises(
        FleetInputError, match="no accepted ERCOT bid set for 2024-07-02"
    ):
        export_bid_set(engine, fleet(2), ERCOT, day, tmp_path)
    outcome = _stored_day(engine, day)
    stored, refusals = push_bid_set(
        engine, fleet(2), ERCOT, day, outcome.bids.to_payload(), submitted_by="test"
    )
    assert refusals == []
    written = export_bid_set(engine, fleet(2), ERCOT, day, tmp_path)
    assert written.folder == tmp_path / f"ERCOT_20240702_v{stored.version}"
    manifest = json.loads(written.manifest.read_text())
    assert (manifest["bid_version"], manifest["plan_version"]) == (stored.version, 1)
    assert manifest["format"] == "ercot-dam/1"
    cop = list(
        csv.DictReader((written.folder / "ERCOT_ESR_SITE_02" / "cop.csv").open())
    )
    assert float(cop[0]["HourBeginningPlannedSOC"]) == pytest.approx(
        0.3 * 20.0, abs=0.05
    )
    energy = written.folder / "ERCOT_ESR_SITE_01" / "energy_bid_offer.csv"
    assert energy.read_text().count("\n") == 25
    with pytest.raises(FleetInputError, match="no accepted ERCOT bid set version=9"):
        export_bid_set(engine, fleet(2), ERCOT, day, tmp_path / "v9", version=9)


def test_export_has_25_hours_when_the_day_is_long(engine, tmp_path):
    # 2024-11-03: US clocks go back, the Central operating day has 25 hours.
    day = dt.date(2024, 11, 3)
    prices = {
        NODE: {
            "energy": daily_prices(25, spike=50.0),
            "reg_up": [6.0] * 25,
            "reg_down": [4.0] * 25,
            "spin": [3.0] * 25,
        }
    }
    outcome = run_dayahead(
        engine,
        fleet(2),
        ERCOT,
        day,
        now=dt.datetime(2024, 11, 2, 14, tzinfo=dt.UTC),
        prices=prices,
        quantile_prices={},
        states={"site-01": SiteState(soc=0.5), "site-02": SiteState(soc=0.5)},
    )
    push_bid_set(
        engine, fleet(2), ERCOT, day, outcome.bids.to_payload(), submitted_by="test"
    )
    written = export_bid_set(engine, fleet(2), ERCOT, day, tmp_path)
    cop = list(
        csv.DictReader((written.folder / "ERCOT_ESR_SITE_01" / "cop.csv").open())
    )
    assert [int(r["HourEnding"]) for r in cop] == list(range(1, 26))
    starts = [r["IntervalStart"] for r in cop]
    assert starts[1:3] == ["2024-11-03T01:00-05:00", "2024-11-03T01:00-06:00"]


def test_cli_bids_export_writes_the_folder_and_exits_2_without_bids(
    migrated_db_url, tmp_path, capsys, monkeypatch
):
    from fleet.cli import main
    from fleet.store.engine import make_engine
    from tests.factories import fleet_data, write_fleet_file

    fleet_path = write_fleet_file(tmp_path, fleet_data(2))
    base = ["bids", "export", "--fleet", str(fleet_path), "--db", migrated_db_url]
    monkeypatch.setenv("COLUMNS", "250")

    def run(args):
        with pytest.raises(SystemExit) as info:
            main(args)
        out, err = capsys.readouterr()
        return info.value.code, out, err

    code, _, err = run([*base, "--day", "2024-07-02", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "no accepted ERCOT bid set for 2024-07-02" in err
    engine = make_engine(migrated_db_url)
    try:
        outcome = _stored_day(engine, dt.date(2024, 7, 2))
        push_bid_set(
            engine,
            fleet(2),
            ERCOT,
            dt.date(2024, 7, 2),
            outcome.bids.to_payload(),
            submitted_by="test",
        )
    finally:
        engine.dispose()
    code, out, err = run([*base, "--day", "2024-07-02", "--out", str(tmp_path / "x")])
    assert code in (0, None), err
    assert "ERCOT_20240702_v1/ERCOT_ESR_SITE_01/energy_bid_offer.csv  24 rows" in out
    assert (tmp_path / "x" / "ERCOT_20240702_v1" / "manifest.json").is_file()


def test_export_bid_set_writes_caiso_files_from_the_stored_plan(engine, tmp_path):
    from tests.factories import make_fleet, site_data

    caiso_site = site_data(
        "site-01", market="CAISO", node=NODE, resource_id="CAISO_NGR_SITE01"
    )
    caiso_fleet = make_fleet(1, sites=[caiso_site])
    day = dt.date(2024, 7, 2)
    prices = {
        NODE: {
            "energy": daily_prices(24, spike=50.0),
            "reg_up": [6.0] * 24,
            "reg_down": [4.0] * 24,
            "spin": [3.0] * 24,
        }
    }
    outcome = run_dayahead(
        engine,
        caiso_fleet,
        CAISO,
        day,
        now=dt.datetime(2024, 7, 1, 14, tzinfo=dt.UTC),
        prices=prices,
        quantile_prices={"p10": {NODE: daily_prices(24, shift=-10)}},
        states={"site-01": SiteState(soc=0.4)},
    )
    stored, refusals = push_bid_set(
        engine,
        caiso_fleet,
        CAISO,
        day,
        outcome.bids.to_payload(),
        submitted_by="test",
    )
    assert refusals == []
    written = export_bid_set(engine, caiso_fleet, CAISO, day, tmp_path)
    assert written.folder.name == f"CAISO_20240702_v{stored.version}"
    folder = written.folder / "CAISO_NGR_SITE01"
    assert sorted(p.name for p in folder.iterdir()) == [
        "as_bids.csv",
        "energy_bid.csv",
        "ngr.csv",
    ]
    (ngr,) = list(csv.DictReader((folder / "ngr.csv").open()))
    assert ngr["InitialSOC"] == "8.00"  # 0.4 of 20 MWh, the plan's start
    assert (ngr["PMin"], ngr["PMax"]) == ("-10.00", "10.00")
    energy = list(csv.DictReader((folder / "energy_bid.csv").open()))
    assert [r["IntervalStart"] for r in energy[:2]] == [
        "2024-07-02T00:00-07:00",
        "2024-07-02T01:00-07:00",
    ]
    assert all(r["MW2"] != "" for r in energy)


def test_export_links_each_block_to_every_enrolled_product_it_can_sustain():
    from dispatch.bids import linked_up_blocks

    up = [p for p in ERCOT.products if p.offer_group == "up" and p.modeled]
    bids = {
        "reg_up": {5: Bid("site-01", "reg_up", 5, ((30.0, 2.0),))},
        "spin": {5: Bid("site-01", "spin", 5, ((20.0, 1.5),))},
        "ecrs": {5: Bid("site-01", "ecrs", 5, ((10.0, 3.0),))},
    }
    enrolled = {"reg_up", "reg_down", "spin", "ecrs", "nonspin"}
    deploy = {p.name: ERCOT.deploy_of(p.name) for p in up}
    assert deploy["reg_up"] == 0.1
    assert deploy["spin"] == deploy["ecrs"] == 0.0
    blocks = linked_up_blocks(up, bids, 5, enrolled, deploy)
    # ECRS (1 h) first: offered to ECRS and spin (0.5 h, not deployed), not to
    # Non-Spin (4 h) nor to reg-up (deployed: it would drain energy the plan did not
    # set aside); then reg-up, which may become spin; then spin alone.
    assert blocks == [
        (10.0, {"spin": 1.5, "ecrs": 3.0}),
        (30.0, {"reg_up": 2.0, "spin": 1.5}),
        (20.0, {"spin": 1.5}),
    ]
    # Whatever mix is awarded, the energy cover and the deployment energy stay
    # within the plan's.
    sustain = {p.name: p.sustain_h for p in up}
    planned_cover = 30 * 0.5 + 20 * 0.5 + 10 * 1.0
    worst = sum(mw * max(sustain[c] for c in prices) for mw, prices in blocks)
    assert worst <= planned_cover + 1e-9
    worst_drain = sum(mw * max(deploy[c] for c in prices) for mw, prices in blocks)
    assert worst_drain <= 30 * 0.1 + 1e-9
    # A product the site is not enrolled in is never priced.
    only = linked_up_blocks(up, bids, 5, {"reg_up", "ecrs"}, deploy)
    assert only[1] == (30.0, {"reg_up": 2.0, "spin": 1.5})  # spin was bid: kept
    assert "nonspin" not in only[0][1]
    assert linked_up_blocks(up, bids, 6, enrolled, deploy) == []


def test_export_offers_a_reg_up_block_to_spin_when_the_site_is_enrolled(ercot_plan):
    scn, result, bid_set = ercot_plan
    enrolled = {s.id: {"reg_up", "reg_down", "spin"} for s in scn.sites}
    tables = market_tables(
        bid_set, ERCOT, IDS, plan_hours(scn, result, ERCOT), None, enrolled
    )
    _, up = tables["ERCOT_ESR_SITE_01"]["as_offer_up.csv"]
    assert up
    for row in up:
        assert row["REGUP"] != ""
        assert row["RRSPF"] != ""
        assert row["ECRS"] == row["ONNS"] == ""
