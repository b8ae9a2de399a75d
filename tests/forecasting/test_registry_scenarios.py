"""Model save/load without refit; scenarios reproducible from a seed; parallel fits."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from forecasting.data import clean_series, read_price_csv, select_series
from forecasting.errors import ForecastInputError
from forecasting.features import issue_time_for
from forecasting.parallel import fit_many
from forecasting.price import PriceForecaster, QuantileForecaster
from forecasting.registry import load_model, save_model
from forecasting.scenarios import price_scenarios

SMALL = {"train_days": 60, "calibration_days": 7, "max_iter": 20}
DAY = dt.date(2024, 2, 1)


@pytest.fixture(scope="module")
def reg_up(shared_data: Path) -> pd.Series:
    frame = read_price_csv(
        shared_data / "ercot_as_mcpc" / "ercot_dam_as_mcpc_2022_2025.csv.gz",
        product="reg_up",
    )
    y, _ = clean_series(
        select_series(frame, market="ERCOT", node="SYSTEM", product="reg_up")
    )
    return y["2023-10-01":"2024-03-01"]


@pytest.fixture(scope="module")
def fitted(reg_up: pd.Series) -> PriceForecaster:
    model = PriceForecaster(market="ERCOT", node="SYSTEM", product="reg_up", **SMALL)
    return model.fit(reg_up, issue_time=issue_time_for(DAY, "America/Chicago"))


def test_load_model_predicts_identically_without_refit_when_saved(
    fitted: PriceForecaster,
    reg_up: pd.Series,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = save_model(fitted, tmp_path, scores={"mae": 1.5})
    card = json.loads((folder / "card.json").read_text())
    assert card["model_version"] == fitted.model_version_
    assert card["params"]["product"] == "reg_up"
    assert card["features"] == fitted.feature_names_
    assert card["scores"] == {"mae": 1.5}
    assert card["train_end_utc"].endswith("Z")

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("fit must not run on load")

    monkeypatch.setattr(QuantileForecaster, "fit", refuse)
    loaded, loaded_card = load_model(folder)
    assert loaded_card.model_version == fitted.model_version_
    pd.testing.assert_frame_equal(
        loaded.predict(reg_up, DAY), fitted.predict(reg_up, DAY)
    )


def test_load_model_raises_naming_option_when_folder_empty(tmp_path: Path) -> None:
    with pytest.raises(ForecastInputError, match="--model"):
        load_model(tmp_path)


def test_predict_raises_not_fitted_when_model_unfitted(reg_up: pd.Series) -> None:
    with pytest.raises(NotFittedError):
        PriceForecaster(product="reg_up").predict(reg_up, DAY)


def test_forecaster_raises_naming_option_when_market_or_product_unknown() -> None:
    with pytest.raises(ForecastInputError, match="--market"):
        PriceForecaster(market="MISO")
    with pytest.raises(ForecastInputError, match="--product"):
        PriceForecaster(product="gold")


def test_fit_raises_when_history_too_short(reg_up: pd.Series) -> None:
    with pytest.raises(ForecastInputError, match="days of history"):
        PriceForecaster(product="reg_up", **SMALL).fit(reg_up.iloc[: 24 * 20])


def test_scenarios_are_identical_when_seed_is_the_same(
    fitted: PriceForecaster, reg_up: pd.Series
) -> None:
    quantiles = fitted.predict(reg_up, DAY)
    a = price_scenarios(quantiles, n_scenarios=50, rng=np.random.default_rng(7))
    b = price_scenarios(quantiles, n_scenarios=50, rng=np.random.default_rng(7))
    c = price_scenarios(quantiles, n_scenarios=50, rng=np.random.default_rng(8))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.to_numpy(), c.to_numpy())
    assert a.shape == (24, 50)
    assert a.attrs["probability"] == pytest.approx(1 / 50)


def test_scenarios_follow_the_quantiles_when_many_are_drawn() -> None:
    idx = pd.date_range("2024-01-01", periods=24, freq="h", tz="UTC")
    q = pd.DataFrame({"p10": 10.0, "p50": 20.0, "p90": 50.0}, index=idx)
    paths = price_scenarios(q, n_scenarios=4000, rng=np.random.default_rng(0))
    values = paths.to_numpy().ravel()
    assert np.quantile(values, 0.5) == pytest.approx(20.0, abs=1.0)
    assert np.quantile(values, 0.1) == pytest.approx(10.0, abs=1.5)
    assert np.quantile(values, 0.9) == pytest.approx(50.0, abs=3.0)
    hour_corr = np.corrcoef(paths.iloc[0], paths.iloc[1])[0, 1]
    assert hour_corr > 0.6


def test_scenarios_raise_naming_column_when_quantile_missing() -> None:
    q = pd.DataFrame({"p10": [1.0], "p50": [2.0]})
    with pytest.raises(ForecastInputError, match="p90"):
        price_scenarios(q, n_scenarios=2, rng=np.random.default_rng(0))


def test_fit_many_fits_every_series_when_given_an_executor(reg_up: pd.Series) -> None:
    series = {
        ("ERCOT", "SYSTEM", "reg_up"): reg_up,
        ("ERCOT", "SYSTEM", "reg_down"): reg_up * 0.5,
    }
    with ThreadPoolExecutor(2) as pool:
        models = fit_many(
            series,
            params=SMALL,
            issue_time=issue_time_for(DAY, "America/Chicago"),
            executor=pool,
        )
    assert set(models) == set(series)
    assert models[("ERCOT", "SYSTEM", "reg_down")].product == "reg_down"
    assert all(hasattr(m, "models_") for m in models.values())


@pytest.mark.slow
def test_fit_many_fits_in_a_process_pool_when_no_executor(reg_up: pd.Series) -> None:
    series = {
        ("ERCOT", "SYSTEM", "reg_up"): reg_up,
        ("ERCOT", "SYSTEM", "nonspin"): reg_up,
    }
    models = fit_many(series, params=SMALL, max_workers=2)
    day_fc = models[("ERCOT", "SYSTEM", "nonspin")].predict(reg_up, DAY)
    assert len(day_fc) == 24
