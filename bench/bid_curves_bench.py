"""Count the shape of the day-ahead energy curves over replayed days (no timings).

For each day: the example fleet's day-ahead scenario from a naive D-1 forecast of real
prices (as ``bessfleet bids make``), its solve and two price alternatives (0.8x, 1.25x),
``dispatch.bids.build_bids``, then ``dispatch.bidcheck.check_bid_set``. Prints per day the
energy curves, the single-point ones, the fixed-quantity ones (AS took all headroom),
the point counts and the refusals.

    .venv/bin/python bench/bid_curves_bench.py --market ERCOT --start 2025-04-01 --days 10
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dispatch.bidcheck import check_bid_set  # noqa: E402
from dispatch.bids import build_bids, with_energy_prices  # noqa: E402
from dispatch.markets import load_market_rules  # noqa: E402
from dispatch.solve import solve  # noqa: E402
from fleet.config import Settings  # noqa: E402
from fleet.fleetfile import load_fleet  # noqa: E402
from fleet.ops.backtest import (  # noqa: E402
    BacktestOptions,
    DayInputs,
    default_price_files,
    prepare_days,
    read_prices,
)
from fleet.ops.scenario_builder import (  # noqa: E402
    ScenarioInputs,
    build_scenario,
    operating_day_start,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", default="ERCOT")
    parser.add_argument("--start", default="2025-04-01")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--fleet", default=str(ROOT / "deploy/examples/fleet.toml"))
    args = parser.parse_args()
    fleet = load_fleet(Path(args.fleet))
    rules = load_market_rules(args.market)
    frame = read_prices(default_price_files(Settings().shared_data_dir), rules.name)
    first = dt.date.fromisoformat(args.start)
    last = first + dt.timedelta(days=args.days - 1)
    days = prepare_days(fleet, frame, first, last, BacktestOptions(market=rules.name))
    totals: Counter[str] = Counter()
    for inputs in days:
        if not isinstance(inputs, DayInputs):
            print(f"skipped: {inputs}")
            continue
        scn = build_scenario(
            fleet,
            rules,
            ScenarioInputs(
                start=operating_day_start(rules, inputs.day),
                interval_minutes=60,
                intervals=inputs.hours,
                prices=inputs.forecast,
            ),
        )
        result = solve(scn)
        alternatives = []
        for factor in (0.8, 1.25):
            alt = with_energy_prices(
                scn,
                {
                    n: [v * factor for v in (p.energy or [])]
                    for n, p in scn.markets.items()
                },
            )
            alternatives.append((alt, solve(alt)))
        bid_set = build_bids(scn, result, rules, inputs.day, alternatives=alternatives)
        curves = [b.curve for b in bid_set.bids if b.product == "energy"]
        single = sum(len(c) < 2 for c in curves)
        fixed = sum(len(c) >= 2 and c[0][0] == c[-1][0] for c in curves)
        refusals = check_bid_set(bid_set.bids, scn, rules)
        points = Counter(len(c) for c in curves)
        print(
            f"{inputs.day}: {len(curves)} curves, {single} single-point, {fixed} fixed "
            f"quantity, points {dict(sorted(points.items()))}, "
            f"{len(refusals)} refusals {[str(r) for r in refusals[:1]]}"
        )
        totals.update(
            curves=len(curves), single=single, fixed=fixed, refused=bool(refusals)
        )
    print(
        f"total: {totals['curves']} curves, {totals['single']} single-point, "
        f"{totals['fixed']} fixed quantity, {totals['refused']} days refused"
    )


if __name__ == "__main__":
    main()
