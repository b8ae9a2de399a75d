"""Features, issue-time safety (no future leak) and DST days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.data import clean_series, read_price_csv, select_series
from forecasting.errors import ForecastInputError
from forecasting.features import (
    build_features,
    issue_time_for,
    known_at,
    known_history,
    local_days,
    operating_day_index,
)
from forecasting.price import PriceForecaster

SMALL = {"train_days": 90, "calibration_days": 14, "max_iter": 30}
TZ = "America/Chicago"


@pytest.fixture(scope="module")
def houston_da(shared_data: Path) -> pd.Series:
    frame = read_price_csv(
        shared_data / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz",
        node="HB_HOUSTON",
    )
    y, _ = clean_series(
        select_series(frame, market="ERCOT", node="HB_HOUSTON", product="da_energy")
    )
    return y["2023-06-01":"2024-12-31"]


@pytest.fixture(scope="module")
def houston_rt(shared_data: Path) -> pd.Series:
    path = (
        shared_data
        / "ercot_rt_da_hourly_15sp_2024_2026"
        / "ercot_rt_da_hourly_15sp_2024_2026.csv.gz"
    )
    frame = read_price_csv(path, node="HB_HOUSTON", product="rt_energy")
    y, _ = clean_series(
        select_series(frame, market="ERCOT", node="HB_HOUSTON", product="rt_energy")
    )
    return y[:"2024-07-31"]


@pytest.fixture(scope="module")
def da_model(houston_da: pd.Series) -> PriceForecaster:
    model = PriceForecaster(
        market="ERCOT", node="HB_HOUSTON", product="da_energy", **SMALL
    )
    return model.fit(houston_da, issue_time=issue_time_for(dt.date(2024, 3, 1), TZ))


@pytest.fixture(scope="module")
def rt_model(houston_rt: pd.Series) -> PriceForecaster:
    model = PriceForecaster(
        market="ERCOT", node="HB_HOUSTON", product="rt_energy", **SMALL
    )
    return model.fit(houston_rt, issue_time=issue_time_for(dt.date(2024, 5, 1), TZ))


def test_operating_day_index_has_23_and_25_hours_when_dst_changes() -> None:
    assert len(operating_day_index(dt.date(2024, 3, 10), TZ)) == 23
    assert len(operating_day_index(dt.date(2024, 11, 3), TZ)) == 25
    assert len(operating_day_index(dt.date(2024, 7, 1), TZ)) == 24
    hours = operating_day_index(dt.date(2024, 11, 3), TZ)
    assert hours[0] == pd.Timestamp("2024-11-03T05:00Z")
    assert hours[-1] == pd.Timestamp("2024-11-04T05:00Z")


def test_issue_time_is_d_minus_1_at_nine_local_when_computed() -> None:
    assert issue_time_for(dt.date(2024, 7, 2), TZ) == pd.Timestamp("2024-07-01T14:00Z")
    assert issue_time_for(dt.date(2024, 1, 2), TZ) == pd.Timestamp("2024-01-01T15:00Z")


@pytest.mark.parametrize(
    ("day", "n_hours"),
    [(dt.date(2024, 3, 10), 23), (dt.date(2024, 11, 3), 25), (dt.date(2024, 6, 5), 24)],
)
def test_predict_returns_every_local_hour_when_day_is_dst_or_normal(
    da_model: PriceForecaster, houston_da: pd.Series, day: dt.date, n_hours: int
) -> None:
    forecast = da_model.predict(houston_da, day)
    assert len(forecast) == n_hours
    assert forecast.index.is_unique
    assert forecast[["p10", "p50", "p90"]].notna().all().all()
    local = forecast.index.tz_convert(TZ)
    assert set(local.date) == {day}
    assert (forecast["p10"] <= forecast["p50"]).all()
    assert (forecast["p50"] <= forecast["p90"]).all()
    assert (forecast.index > forecast["issue_time_utc"]).all()


def test_features_mask_later_hours_of_yesterday_when_product_is_realtime(
    houston_rt: pd.Series,
) -> None:
    day = dt.date(2024, 4, 10)
    feats = build_features(houston_rt, [day], tz=TZ, product="rt_energy")
    hours = feats.index.tz_convert(TZ).hour
    assert feats.loc[hours >= 9, "lag_d1"].isna().all()
    assert feats.loc[hours < 9, "lag_d1"].notna().all()
    da_feats = build_features(houston_rt, [day], tz=TZ, product="da_energy")
    assert da_feats["lag_d1"].notna().all()


def test_known_at_day_ahead_is_publication_on_d_minus_1_when_product_is_day_ahead() -> (
    None
):
    stamps = pd.DatetimeIndex([pd.Timestamp("2024-07-02T05:00Z")])  # 00:00 CDT on D
    assert known_at(stamps, product="da_energy", tz=TZ)[0] == pd.Timestamp(
        "2024-07-01T19:00Z"
    )
    assert known_at(stamps, product="rt_energy", tz=TZ)[0] == pd.Timestamp(
        "2024-07-02T06:00Z"
    )


def test_local_days_raises_naming_end_when_end_before_start() -> None:
    with pytest.raises(ForecastInputError, match="--end"):
        local_days("2024-02-01", "2024-01-01")


def _perturb_after(
    y: pd.Series,
    issue: pd.Timestamp,
    product: str,
    shift: float,
    scale: float,
    seed: int,
) -> pd.Series:
    avail = known_at(pd.DatetimeIndex(y.index), product=product, tz=TZ)
    future = np.asarray(avail > issue)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, future.sum())
    out = y.copy()
    out[future] = out[future] * scale + shift + 100.0 * noise
    return out


@settings(max_examples=8, deadline=None)
@given(
    day_offset=st.integers(min_value=0, max_value=60),
    shift=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    scale=st.floats(min_value=-5, max_value=5, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_forecast_is_unchanged_when_data_after_issue_time_is_perturbed(
    da_model: PriceForecaster,
    rt_model: PriceForecaster,
    houston_da: pd.Series,
    houston_rt: pd.Series,
    day_offset: int,
    shift: float,
    scale: float,
    seed: int,
) -> None:
    for model, y, first in (
        (da_model, houston_da, dt.date(2024, 3, 1)),
        (rt_model, houston_rt, dt.date(2024, 5, 1)),
    ):
        day = first + dt.timedelta(days=day_offset)
        issue = model.issue_time(day)
        base = model.predict(y, day)
        perturbed = _perturb_after(y, issue, model.product, shift, scale, seed)
        assert not np.allclose(perturbed.to_numpy(), y.to_numpy(), equal_nan=True)
        again = model.predict(perturbed, day)
        pd.testing.assert_frame_equal(base, again)


def test_fit_is_unchanged_when_data_after_issue_time_is_perturbed(
    houston_rt: pd.Series,
) -> None:
    day = dt.date(2024, 4, 15)
    issue = issue_time_for(day, TZ)
    perturbed = _perturb_after(houston_rt, issue, "rt_energy", 500.0, -2.0, 1)
    kw = {"market": "ERCOT", "node": "HB_HOUSTON", "product": "rt_energy", **SMALL}
    a = PriceForecaster(**kw).fit(houston_rt, issue_time=issue)
    b = PriceForecaster(**kw).fit(perturbed, issue_time=issue)
    assert a.model_version_ == b.model_version_
    pd.testing.assert_frame_equal(a.predict(houston_rt, day), b.predict(perturbed, day))


def test_known_history_drops_everything_after_issue_when_realtime(
    houston_rt: pd.Series,
) -> None:
    issue = pd.Timestamp("2024-04-10T14:00Z")
    known = known_history(houston_rt, issue, product="rt_energy", tz=TZ)
    assert known.index.max() == pd.Timestamp("2024-04-10T13:00Z")
