"""Fast ablations of the DA P50 model on ERCOT hubs (tuning data only).

Run: ``.venv/bin/python bench/da_tuning.py [--start 2024-01-01 --end 2024-12-31]``

Builds the feature matrix of every day once (day-ahead features of day D use only what
is known at D-1 09:00, see ``forecasting.features``), then refits one P50 model every
``--refit-days`` on the trailing window known at the block's first issue time, as
``forecasting.backtest.rolling_backtest`` does; with the library's settings it
reproduces ``bench/forecast_bench.py --hubs`` to about 0.1 point. Prints, per variant,
the P50 MAE reduction against the 7-day same-hour median for each hub. Use it on data
up to 2025-05-31 only (``--end`` is checked).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# The data files and hubs of the forecast bench (run from bench/: its folder is on
# sys.path).
from forecast_bench import AS_NEW, AS_OLD, DA, HUBS, RT_DA
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from forecasting.data import clean_series, read_price_csv, select_series, to_hourly
from forecasting.features import build_features, cross_node_features

AS_FILES = (AS_OLD, AS_NEW)
TZ = "America/Chicago"
TUNING_END = pd.Timestamp("2025-05-31")
AS_PRODUCTS = ("reg_up", "reg_down", "rrs_spin", "nonspin", "ecrs")
RT_COLUMNS = ("lag_d1", "lag_d2", "d1_mean", "d1_max", "d1_last", "d2_mean")
RT_COLUMNS += ("week_median_at_hour", "week_mean_at_hour", "week_max_at_hour")


@dataclass(frozen=True)
class Variant:
    name: str
    extra: tuple[str, ...] = ()
    train_days: int = 730
    holdout_days: int = 0
    median_reference: bool = False
    asinh_scale: float | None = 20.0
    params: dict[str, Any] = field(default_factory=dict)


VARIANTS = (
    Variant("P50 without the calibration days", holdout_days=28, asinh_scale=None),
    Variant("P50 on the whole window", asinh_scale=None),
    Variant("+ asinh(y/20)"),
    Variant("+ cross-hub spreads", extra=("xhub",)),
    Variant(
        "library (+ hour x weekday, 300 it, lr 0.05)",
        extra=("xhub",),
        params={"max_iter": 300, "learning_rate": 0.05},
    ),
    Variant("+ RT of the hub", extra=("xhub", "rt")),
    Variant("+ DA AS prices of D-1", extra=("xhub", "as")),
    Variant("deviation from the 7-day median", extra=("xhub",), median_reference=True),
    Variant("trailing 365 days", extra=("xhub",), train_days=365),
)


def _series(frame: pd.DataFrame, node: str, product: str) -> pd.Series:
    part = frame[(frame["node"] == node) & (frame["product"] == product)]
    y, _ = clean_series(
        to_hourly(select_series(part, market="ERCOT", node=node, product=product))
    )
    return y


def load() -> dict[str, dict[str, pd.Series]]:
    da = read_price_csv(DA)
    rt = read_price_csv(RT_DA)
    both = pd.concat([da, rt[rt["product"] == "da_energy"]])
    sys_as = pd.concat([read_price_csv(f) for f in AS_FILES])
    return {
        "da": {h: _series(both, h, "da_energy") for h in HUBS},
        "rt": {h: _series(rt, h, "rt_energy") for h in HUBS},
        "as": {p: _series(sys_as, "SYSTEM", p) for p in AS_PRODUCTS},
    }


def features(
    data: dict[str, dict[str, pd.Series]],
    hub: str,
    days: list[Any],
    extra: tuple[str, ...],
) -> pd.DataFrame:
    own = build_features(data["da"][hub], days, tz=TZ, product="da_energy")
    parts = [own]
    if "xhub" in extra:
        others = {h: s for h, s in data["da"].items() if h != hub}
        parts.append(cross_node_features(own, others, tz=TZ, product="da_energy"))
    if "rt" in extra:
        rt = build_features(data["rt"][hub], days, tz=TZ, product="rt_energy")
        block = rt[list(RT_COLUMNS)].add_prefix("rt_")
        block["rt_da_spread_d2"] = own["lag_d2"] - rt["lag_d2"]
        parts.append(block)
    if "as" in extra:
        for product, s in data["as"].items():
            f = build_features(s, days, tz=TZ, product=product)
            cols = f[["lag_d1", "d1_max", "week_median_at_hour"]]
            parts.append(cols.add_prefix(f"as_{product}_"))
    return pd.concat(parts, axis=1)


def run(
    data: dict[str, dict[str, pd.Series]],
    variant: Variant,
    hubs: tuple[str, ...],
    start: pd.Timestamp,
    end: pd.Timestamp,
    refit_days: int,
) -> dict[str, float]:
    """Return hub -> P50 MAE reduction against the 7-day same-hour median."""
    first = start - pd.Timedelta(days=variant.train_days + 20)
    days = [d.date() for d in pd.date_range(first, end)]
    scale = variant.asinh_scale
    fw: Callable[[np.ndarray], np.ndarray] = (
        (lambda v: v) if scale is None else (lambda v: np.arcsinh(v / scale))
    )
    bw: Callable[[np.ndarray], np.ndarray] = (
        (lambda v: v) if scale is None else (lambda v: scale * np.sinh(v))
    )
    out = {}
    for hub in hubs:
        frame = features(data, hub, days, variant.extra)
        y = data["da"][hub].reindex(frame.index).to_numpy(float)
        row_day = pd.DatetimeIndex(frame.index.tz_convert(TZ).normalize()).tz_localize(
            None
        )
        median = frame["week_median_at_hour"].to_numpy(float)
        ref = np.nan_to_num(median) if variant.median_reference else np.zeros(len(y))
        x = frame.to_numpy(float, copy=True)
        target = y - ref
        pred = np.full(len(y), np.nan)
        for block in pd.date_range(start, end, freq=f"{refit_days}D"):
            last = block - pd.Timedelta(days=1 + variant.holdout_days)
            train = (
                (row_day >= block - pd.Timedelta(days=variant.train_days))
                & (row_day <= last)
                & ~np.isnan(target)
            )
            test = (row_day >= block) & (
                row_day <= min(block + pd.Timedelta(days=refit_days - 1), end)
            )
            x_train = x[train]
            x_train[:, np.isnan(x_train).all(axis=0)] = 0.0
            params: dict[str, Any] = {
                "max_iter": 100,
                "learning_rate": 0.1,
                "max_leaf_nodes": 15,
                "min_samples_leaf": 40,
                "l2_regularization": 1.0,
                "random_state": 0,
                "early_stopping": False,
                **variant.params,
            }
            model = HistGradientBoostingRegressor(loss="absolute_error", **params)
            with threadpool_limits(1, user_api="openmp"):
                model.fit(x_train, fw(target[train]))
                pred[test] = bw(model.predict(x[test])) + ref[test]
        scored = np.asarray((row_day >= start) & (row_day <= end)) & ~np.isnan(y)
        mae = np.mean(np.abs(pred[scored] - y[scored]))
        base = np.nanmean(np.abs(median[scored] - y[scored]))
        out[hub] = 1.0 - mae / base
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", default="2024-01-01")
    parser.add_argument("--end", default="2024-12-31")
    parser.add_argument("--refit-days", type=int, default=28)
    parser.add_argument(
        "--hubs", default="HB_WEST,HB_HOUSTON,HB_NORTH,HB_PAN", help="comma-separated"
    )
    args = parser.parse_args()
    start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    if end > TUNING_END:
        parser.error(f"--end {end.date()} is after the tuning cut {TUNING_END.date()}")
    hubs = tuple(args.hubs.split(","))
    logging.basicConfig(level=logging.ERROR)
    data = load()
    print(f"P50 MAE below the 7-day median, {start.date()}..{end.date()}:")
    for variant in VARIANTS:
        scores = run(data, variant, hubs, start, end, args.refit_days)
        per_hub = " ".join(f"{h}: {v:.1%}" for h, v in scores.items())
        mean = float(np.mean(list(scores.values())))
        print(f"{variant.name:45s} mean {mean:.1%} | {per_hub}", flush=True)


if __name__ == "__main__":
    main()
