"""Features, issue-time safety (no future leak) and DST days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecasting.data import clean_series, read_price_csv, select_series
from forecasting.errors import ForecastInputError
from forecasting.features import (
    build_features,
    cross_node_feature_names,
    cross_node_features,
    issue_time_for,
    known_at,
    known_history,
    local_days,
    operating_day_index,
    pooled_feature_names,
    pooled_features,
)
from forecasting.price import PriceForecaster

SMALL: dict[str, Any] = {"train_days": 90, "calibration_days": 14, "max_iter": 30}
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
def other_hubs_da(shared_data: Path) -> dict[str, pd.Series]:
    out = {}
    for node in ("HB_WEST", "HB_NORTH"):
        frame = read_price_csv(
            shared_data / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz",
            node=node,
        )
        y, _ = clean_series(
            select_series(frame, market="ERCOT", node=node, product="da_energy")
        )
        out[node] = y["2023-06-01":"2024-12-31"]
    return out


@pytest.fixture(scope="module")
def cross_model(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> PriceForecaster:
    model = PriceForecaster(
        market="ERCOT",
        node="HB_HOUSTON",
        product="da_energy",
        cross_nodes=("HB_WEST", "HB_NORTH"),
        **SMALL,
    )
    issue = issue_time_for(dt.date(2024, 3, 1), TZ)
    return model.fit(houston_da, issue_time=issue, exog=other_hubs_da)


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


def test_cross_node_features_are_spreads_to_other_nodes_when_built(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> None:
    day = dt.date(2024, 7, 2)
    own = build_features(houston_da, [day], tz=TZ, product="da_energy")
    cross = cross_node_features(own, other_hubs_da, tz=TZ, product="da_energy")
    assert list(cross.columns) == cross_node_feature_names(["HB_WEST", "HB_NORTH"])
    assert list(cross.columns)[:2] == [
        "x_HB_WEST_lag_d1",
        "x_HB_WEST_week_median_at_hour",
    ]
    stamp = pd.Timestamp("2024-07-02T22:00Z")  # 17:00 CDT
    yesterday = stamp - pd.Timedelta(days=1)
    expected = other_hubs_da["HB_WEST"][yesterday] - houston_da[yesterday]
    assert cross.loc[stamp, "x_HB_WEST_lag_d1"] == pytest.approx(expected)
    assert cross.notna().all().all()


def test_hour_x_weekday_is_local_hour_plus_24_times_weekday_when_built(
    houston_da: pd.Series,
) -> None:
    day = dt.date(2024, 7, 3)  # a Wednesday (weekday 2)
    feats = build_features(houston_da, [day], tz=TZ, product="da_energy")
    hours = np.asarray(feats.index.tz_convert(TZ).hour)
    np.testing.assert_array_equal(feats["hour_x_weekday"], hours + 48.0)


def test_fit_raises_naming_exog_when_a_cross_node_series_is_missing(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> None:
    model = PriceForecaster(
        market="ERCOT",
        node="HB_HOUSTON",
        cross_nodes=("HB_WEST", "HB_PAN"),
        **SMALL,
    )
    issue = issue_time_for(dt.date(2024, 3, 1), TZ)
    with pytest.raises(ForecastInputError, match=r"exog: missing .*HB_PAN"):
        model.fit(houston_da, issue_time=issue, exog=other_hubs_da)


def test_p50_asinh_scale_raises_when_not_positive(houston_da: pd.Series) -> None:
    model = PriceForecaster(market="ERCOT", p50_asinh_scale=0.0, **SMALL)
    with pytest.raises(ForecastInputError, match="p50_asinh_scale"):
        model.fit(houston_da, issue_time=issue_time_for(dt.date(2024, 3, 1), TZ))


def test_cross_node_forecast_changes_when_known_cross_node_data_changes(
    cross_model: PriceForecaster,
    houston_da: pd.Series,
    other_hubs_da: dict[str, pd.Series],
) -> None:
    day = dt.date(2024, 3, 20)
    base = cross_model.predict(houston_da, day, other_hubs_da)
    issue = cross_model.issue_time(day)
    west = other_hubs_da["HB_WEST"]
    avail = known_at(pd.DatetimeIndex(west.index), product="da_energy", tz=TZ)
    recent = np.asarray((avail <= issue) & (west.index > issue - pd.Timedelta(days=9)))
    shifted = west.copy()
    shifted[recent] = shifted[recent] + 300.0
    again = cross_model.predict(houston_da, day, {**other_hubs_da, "HB_WEST": shifted})
    assert not np.allclose(base["p50"], again["p50"])


@settings(max_examples=6, deadline=None)
@given(
    day_offset=st.integers(min_value=0, max_value=60),
    shift=st.floats(min_value=-1e4, max_value=1e4, allow_nan=False),
    scale=st.floats(min_value=-5, max_value=5, allow_nan=False),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_cross_node_forecast_is_unchanged_when_any_series_after_issue_is_perturbed(
    cross_model: PriceForecaster,
    houston_da: pd.Series,
    other_hubs_da: dict[str, pd.Series],
    day_offset: int,
    shift: float,
    scale: float,
    seed: int,
) -> None:
    day = dt.date(2024, 3, 1) + dt.timedelta(days=day_offset)
    issue = cross_model.issue_time(day)
    base = cross_model.predict(houston_da, day, other_hubs_da)
    y = _perturb_after(houston_da, issue, "da_energy", shift, scale, seed)
    exog = {
        node: _perturb_after(s, issue, "da_energy", -shift, scale, seed + i + 1)
        for i, (node, s) in enumerate(other_hubs_da.items())
    }
    assert not np.allclose(
        exog["HB_WEST"].to_numpy(), other_hubs_da["HB_WEST"].to_numpy(), equal_nan=True
    )
    again = cross_model.predict(y, day, exog)
    pd.testing.assert_frame_equal(base, again)


def test_cross_node_fit_is_unchanged_when_any_series_after_issue_is_perturbed(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> None:
    day = dt.date(2024, 4, 15)
    issue = issue_time_for(day, TZ)
    y = _perturb_after(houston_da, issue, "da_energy", 500.0, -2.0, 1)
    exog = {
        node: _perturb_after(s, issue, "da_energy", -700.0, 3.0, 2)
        for node, s in other_hubs_da.items()
    }
    kw = {
        "market": "ERCOT",
        "node": "HB_HOUSTON",
        "cross_nodes": ("HB_WEST", "HB_NORTH"),
        **SMALL,
    }
    a = PriceForecaster(**kw).fit(houston_da, issue_time=issue, exog=other_hubs_da)
    b = PriceForecaster(**kw).fit(y, issue_time=issue, exog=exog)
    assert a.model_version_ == b.model_version_
    pd.testing.assert_frame_equal(
        a.predict(houston_da, day, other_hubs_da), b.predict(y, day, exog)
    )


def test_pooled_features_are_spreads_to_every_pool_node_when_built(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> None:
    day = dt.date(2024, 7, 2)
    series = {"HB_HOUSTON": houston_da, **other_hubs_da}
    frames = {
        n: build_features(s, [day], tz=TZ, product="da_energy")
        for n, s in series.items()
    }
    west = pooled_features(frames, "HB_WEST")
    assert list(west.columns) == pooled_feature_names(list(series))
    assert (west["pool_index"] == 1.0).all()
    assert (west["x_HB_WEST_lag_d1"] == 0.0).all()
    stamp = pd.Timestamp("2024-07-02T22:00Z")  # 17:00 CDT
    yesterday = stamp - pd.Timedelta(days=1)
    expected = houston_da[yesterday] - other_hubs_da["HB_WEST"][yesterday]
    assert west.loc[stamp, "x_HB_HOUSTON_lag_d1"] == pytest.approx(expected)
    assert west.loc[stamp, "lag_d1"] == other_hubs_da["HB_WEST"][yesterday]
    with pytest.raises(ForecastInputError, match="HB_PAN"):
        pooled_features(frames, "HB_PAN")


def test_da_model_pools_its_p50_over_the_cross_nodes_by_default(
    cross_model: PriceForecaster,
    houston_da: pd.Series,
    other_hubs_da: dict[str, pd.Series],
) -> None:
    # The leak tests on cross_model above therefore cover the pooled P50 too.
    assert cross_model.p50_pool
    assert cross_model.pool_feature_names_ == pooled_feature_names(
        ["HB_HOUSTON", "HB_WEST", "HB_NORTH"]
    )
    single = PriceForecaster(
        market="ERCOT",
        node="HB_HOUSTON",
        cross_nodes=("HB_WEST", "HB_NORTH"),
        p50_pool=False,
        **SMALL,
    ).fit(
        houston_da,
        issue_time=cross_model.issue_time(dt.date(2024, 3, 1)),
        exog=other_hubs_da,
    )
    # the rows of three nodes in the pooled P50 fit
    assert cross_model.n_train_pool_ > 2.9 * cross_model.n_train_
    assert single.n_train_pool_ == 0
    assert "p50_pool" not in single.models_
    day = dt.date(2024, 3, 5)
    a = cross_model.predict(houston_da, day, other_hubs_da)
    b = single.predict(houston_da, day, other_hubs_da)
    assert not np.allclose(a["p50"], b["p50"])
    with pytest.raises(ForecastInputError, match="p50_features"):
        cross_model.predict_features(
            pd.concat(
                [
                    build_features(houston_da, [day], tz=TZ, product="da_energy"),
                    cross_node_features(
                        build_features(houston_da, [day], tz=TZ, product="da_energy"),
                        other_hubs_da,
                        tz=TZ,
                        product="da_energy",
                    ),
                ],
                axis=1,
            )
        )


def test_fit_raises_naming_cross_nodes_when_they_contain_the_node_itself(
    houston_da: pd.Series, other_hubs_da: dict[str, pd.Series]
) -> None:
    model = PriceForecaster(
        market="ERCOT",
        node="HB_WEST",
        cross_nodes=("HB_WEST", "HB_NORTH"),
        **SMALL,
    )
    issue = issue_time_for(dt.date(2024, 3, 1), TZ)
    with pytest.raises(ForecastInputError, match="cross_nodes"):
        model.fit(other_hubs_da["HB_WEST"], issue_time=issue, exog=other_hubs_da)
