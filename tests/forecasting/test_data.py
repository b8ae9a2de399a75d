"""Bad input: gaps, duplicates, NaN, absurd prices, unknown keys, bad files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting.data import (
    clean_series,
    read_price_csv,
    select_series,
    to_hourly,
)
from forecasting.errors import ForecastInputError
from forecasting.features import issue_time_for
from forecasting.price import PriceForecaster

SMALL = {"train_days": 60, "calibration_days": 7, "max_iter": 20}


@pytest.fixture(scope="module")
def north(shared_data: Path) -> pd.Series:
    frame = read_price_csv(
        shared_data / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz",
        node="HB_NORTH",
    )
    raw = select_series(frame, market="ERCOT", node="HB_NORTH", product="da_energy")
    return raw["2023-09-01":"2023-12-31"]


def test_clean_series_reports_gaps_and_leaves_them_missing_when_hours_absent(
    north: pd.Series,
) -> None:
    holey = north.drop(north.index[100:110]).drop(north.index[500:501])
    clean, report = clean_series(holey)
    assert len(report.gaps) == 2
    assert report.gaps[0] == (north.index[100], north.index[109])
    assert report.n_missing == 11
    assert clean.loc[north.index[100] : north.index[109]].isna().all()
    assert len(clean) == len(north)


def test_clean_series_counts_duplicates_when_timestamps_repeat(
    north: pd.Series,
) -> None:
    dup = pd.concat([north, north.iloc[[5, 6]] + 1.0, north.iloc[[7]]])
    clean, report = clean_series(dup)
    assert report.n_duplicates == 3
    assert report.n_conflicting_duplicates == 2
    assert clean.index.is_unique
    assert clean.iloc[5] == north.iloc[5]


def test_clean_series_counts_nan_and_keeps_them_missing_when_values_nan(
    north: pd.Series,
) -> None:
    bad = north.copy()
    bad.iloc[[3, 40]] = np.nan
    clean, report = clean_series(bad)
    assert report.n_nan == 2
    assert clean.iloc[[3, 40]].isna().all()
    assert report.gaps == ()


def test_clean_series_reports_outliers_when_prices_absurd(north: pd.Series) -> None:
    bad = north.copy()
    bad.iloc[10] = 1e7
    bad.iloc[20] = -1e7
    clean, report = clean_series(bad)
    assert report.outliers == (north.index[10], north.index[20])
    assert clean.iloc[[10, 20]].isna().all()
    assert "2 outliers" in report.summary()


def test_fit_excludes_outliers_when_prices_absurd(north: pd.Series) -> None:
    bad = north.copy()
    bad.iloc[300:310] = 1e7
    cleaned, _ = clean_series(bad)
    blanked = north.copy()
    blanked.iloc[300:310] = np.nan
    reference, _ = clean_series(blanked)
    day = dt.date(2023, 12, 1)
    issue = issue_time_for(day, "America/Chicago")
    kw = {"market": "ERCOT", "node": "HB_NORTH", **SMALL}
    a = PriceForecaster(**kw).fit(cleaned, issue_time=issue)
    b = PriceForecaster(**kw).fit(reference, issue_time=issue)
    fa, fb = a.predict(cleaned, day), b.predict(reference, day)
    pd.testing.assert_frame_equal(fa, fb)
    assert fa["p90"].max() < 1e4


def test_clean_series_is_not_forward_filled_when_gap_precedes_training(
    north: pd.Series,
) -> None:
    holey = north.drop(north.index[200:260])
    clean, _ = clean_series(holey)
    model = PriceForecaster(market="ERCOT", node="HB_NORTH", **SMALL)
    model.fit(clean, issue_time=issue_time_for(dt.date(2023, 12, 1), "America/Chicago"))
    hours_in_data = clean.notna().sum()
    assert model.n_train_ <= hours_in_data
    assert clean.iloc[200:260].isna().all()


def test_to_hourly_averages_quarter_hours_when_series_is_15_min() -> None:
    idx = pd.date_range("2024-01-01", periods=8, freq="15min", tz="UTC")
    hourly = to_hourly(pd.Series([1.0, 2, 3, 4, 10, 10, 10, 10], index=idx))
    assert hourly.tolist() == [2.5, 10.0]


def test_read_price_csv_raises_naming_column_when_price_column_missing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "timestamp_utc,market,node,product,value\n2024-01-01T00:00:00Z,ERCOT,X,da_energy,1\n"
    )
    with pytest.raises(ForecastInputError, match="price_usd_per_mwh"):
        read_price_csv(path)


def test_read_price_csv_raises_naming_option_when_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ForecastInputError, match="--prices"):
        read_price_csv(tmp_path / "nope.csv")


def test_select_series_raises_naming_node_when_node_unknown(shared_data: Path) -> None:
    frame = read_price_csv(
        shared_data / "caiso_dervet_example_2020" / "caiso_da_energy_2020_hourly.csv"
    )
    with pytest.raises(ForecastInputError, match="--node"):
        select_series(frame, market="CAISO", node="NOPE", product="da_energy")
    with pytest.raises(ForecastInputError, match="--product"):
        select_series(frame, market="CAISO", node="X", product="gold")


def test_select_series_maps_spin_alias_when_product_is_spin(shared_data: Path) -> None:
    frame = read_price_csv(
        shared_data / "ercot_as_mcpc" / "ercot_dam_as_mcpc_2022_2025.csv.gz",
        product="spin",
    )
    series = select_series(frame, market="ERCOT", node="SYSTEM", product="spin")
    assert series.name == "ERCOT/SYSTEM/rrs_spin"
    assert len(series) > 20_000


def test_clean_series_reports_repeated_hour_when_fall_back_duplicated() -> None:
    local = pd.date_range("2024-11-03 00:00", periods=4, freq="h", tz="America/Chicago")
    utc = local.tz_convert("UTC")
    series = pd.Series([1.0, 2.0, 3.0, 4.0], index=utc)
    clean, report = clean_series(series)
    assert report.n_duplicates == 0
    assert len(clean) == 4  # 01:00 CDT and 01:00 CST are distinct UTC hours
