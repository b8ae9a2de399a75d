"""Load forecasts with peaks; rolling backtest; the forecast CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fleet.cli import main
from forecasting.backtest import FORECAST_COLUMNS, plot_backtest, rolling_backtest
from forecasting.data import clean_series, read_price_csv, select_series
from forecasting.errors import ForecastInputError
from forecasting.load import (
    LoadForecaster,
    daily_peaks,
    monthly_peak,
    peak_scores,
    read_load_csv,
)
from forecasting.price import PriceForecaster

SMALL = {"train_days": 60, "calibration_days": 7, "max_iter": 20}
LONDON = "Europe/London"


@pytest.fixture(scope="module")
def building(shared_data: Path) -> pd.Series:
    path = (
        shared_data
        / "building_load_cambridge_hourly"
        / "ucam_buildings_b2_b35_b105_2022_2023_hourly.csv"
    )
    y, report = clean_series(read_load_csv(path, site="UCam_Building_b2"))
    assert report.n_duplicates == 0
    return y["2022-09-01":"2023-02-28"]


@pytest.fixture(scope="module")
def houston_slice(shared_data: Path) -> pd.DataFrame:
    frame = read_price_csv(
        shared_data / "ercot_da_spp" / "ercot_da_spp_hubs_lz_2021_2025.csv.gz",
        node="HB_HOUSTON",
    )
    stamps = frame["timestamp_utc"]
    return frame[(stamps >= "2023-10-01") & (stamps < "2024-01-20")]


def test_load_forecast_gives_daily_and_monthly_peaks_when_fitted(
    building: pd.Series,
) -> None:
    model = LoadForecaster(site_id="b2", tz=LONDON, **SMALL)
    day = dt.date(2023, 1, 17)
    model.fit(building, issue_time=model.issue_time(day))
    days = [day + dt.timedelta(days=k) for k in range(5)]
    forecast = model.predict_days(building, days)
    forecast["actual"] = building.reindex(forecast.index)
    peaks = daily_peaks(forecast, tz=LONDON)
    assert list(peaks.index) == days
    assert (peaks["peak_p90_kw"] >= peaks["peak_p50_kw"]).all()
    scores = peak_scores(peaks)
    assert scores["peak_mape"] < 0.25
    assert 0.0 <= scores["p90_peak_covers"] <= 1.0
    month = monthly_peak(
        building[: model.issue_time(day)], forecast, tz=LONDON, month=day
    )
    assert month["expected_peak_kw"] >= month["observed_peak_kw"]
    assert month["cautious_peak_kw"] >= month["expected_peak_kw"]
    assert model.model_version_.startswith("b2-load-")


def test_load_features_hide_yesterday_after_issue_when_load_is_metered(
    building: pd.Series,
) -> None:
    model = LoadForecaster(site_id="b2", tz=LONDON, **SMALL)
    day = dt.date(2023, 1, 20)
    model.fit(building, issue_time=model.issue_time(day))
    issue = model.issue_time(day)
    changed = building.copy()
    changed[changed.index >= issue] = 1e5
    pd.testing.assert_frame_equal(
        model.predict(building, day), model.predict(changed, day)
    )


def test_read_load_csv_raises_naming_site_when_unknown(shared_data: Path) -> None:
    path = (
        shared_data
        / "building_load_cambridge_hourly"
        / "ucam_buildings_b2_b35_b105_2022_2023_hourly.csv"
    )
    with pytest.raises(ForecastInputError, match="--site"):
        read_load_csv(path, site="nope")


def test_rolling_backtest_scores_model_and_baselines_when_run(
    houston_slice: pd.DataFrame, tmp_path: Path
) -> None:
    y, _ = clean_series(
        select_series(houston_slice, market="ERCOT", node="HB_HOUSTON", product="da")
    )
    result = rolling_backtest(
        y,
        lambda: PriceForecaster(market="ERCOT", node="HB_HOUSTON", **SMALL),
        start="2024-01-01",
        end="2024-01-10",
        refit_days=7,
    )
    frame = result.forecasts
    assert list(frame.columns[: len(FORECAST_COLUMNS)]) == list(FORECAST_COLUMNS)
    assert len(frame) == 240
    assert result.n_refits == 2
    assert (frame["issue_time_utc"] < frame["timestamp_utc"]).all()
    assert frame["model_version"].nunique() == 2
    assert list(result.scores.index) == [
        "model",
        "persistence",
        "seasonal_naive",
        "naive_average",
        "median_7d",
    ]
    assert result.scores.loc["persistence", "mae_vs_best_baseline"] <= 0.0 or (
        result.scores.loc["naive_average", "mae_vs_best_baseline"] <= 0.0
    )
    assert 0.0 <= result.scores.loc["model", "coverage_p10_p90"] <= 1.0
    png = plot_backtest(result, tmp_path / "bt.png", title="t", tz="America/Chicago")
    assert png.stat().st_size > 10_000


def test_rolling_backtest_raises_naming_dates_when_period_has_no_data(
    houston_slice: pd.DataFrame,
) -> None:
    y, _ = clean_series(
        select_series(houston_slice, market="ERCOT", node="HB_HOUSTON", product="da")
    )
    with pytest.raises(ForecastInputError, match="--start/--end"):
        rolling_backtest(
            y,
            lambda: PriceForecaster(**SMALL),
            start="2025-01-01",
            end="2025-01-03",
        )


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.rename(columns={"price": "price_usd_per_mwh"}).copy()
    out["timestamp_utc"] = pd.DatetimeIndex(out["timestamp_utc"]).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    out.to_csv(path, index=False)
    return path


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_backtest_writes_csv_and_plot_when_prices_csv_given(
    houston_slice: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _write_csv(houston_slice, tmp_path / "prices.csv")
    out, plot = tmp_path / "fc.csv", tmp_path / "fc.png"
    code = _run(
        [
            "forecast", "backtest", "--market", "ERCOT", "--node", "HB_HOUSTON",
            "--product", "energy_da", "--start", "2024-01-05", "--end", "2024-01-08",
            "--prices", str(csv), "--out", str(out), "--plot", str(plot),
            "--train-days", "60",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    assert "persistence" in printed
    assert "seasonal" in printed
    written = pd.read_csv(out)
    assert list(written.columns[:6]) == list(FORECAST_COLUMNS)
    assert len(written) == 96
    assert written["timestamp_utc"].str.endswith("Z").all()
    assert np.isfinite(written["p50"]).all()
    assert plot.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--node", "NOPE", "--start", "2024-01-05", "--end", "2024-01-06"], "--node"),
        (
            ["--node", "HB_HOUSTON", "--start", "2024-01-05", "--end", "2024-01-01"],
            "--end",
        ),
        (
            ["--node", "HB_HOUSTON", "--start", "2026-01-05", "--end", "2026-01-06"],
            "--start",
        ),
        (
            ["--node", "HB_HOUSTON", "--start", "someday", "--end", "2024-01-06"],
            "--start",
        ),
    ],
)
def test_cli_backtest_exits_2_naming_option_when_input_bad(
    houston_slice: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    needle: str,
) -> None:
    csv = _write_csv(houston_slice, tmp_path / "prices.csv")
    argv = ["forecast", "backtest", "--market", "ERCOT", "--product", "da_energy"]
    code = _run([*argv, *extra, "--prices", str(csv)])
    assert code == 2
    assert needle in capsys.readouterr().err


def test_cli_train_and_predict_store_forecast_when_db_given(
    houston_slice: pd.DataFrame,
    tmp_path: Path,
    migrated_db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fleet.store.engine import make_engine
    from fleet.store.forecasts import load_price_forecast

    csv = _write_csv(houston_slice, tmp_path / "prices.csv")
    assert _run(["prices", "import", str(csv), "--db", migrated_db_url]) == 0
    registry = tmp_path / "models"
    code = _run(
        [
            "forecast", "train", "--market", "ERCOT", "--node", "HB_HOUSTON",
            "--product", "da_energy", "--registry", str(registry),
            "--as-of", "2024-01-10", "--db", migrated_db_url, "--train-days", "60",
        ]
    )  # fmt: skip
    assert code == 0
    (folder,) = registry.iterdir()
    code = _run(
        [
            "forecast", "predict", "--model", str(folder), "--day", "2024-01-10",
            "--db", migrated_db_url, "--store",
        ]
    )  # fmt: skip
    assert code == 0
    assert "stored 24 forecast rows" in capsys.readouterr().out
    engine = make_engine(migrated_db_url)
    try:
        stored = load_price_forecast(
            engine, market="ERCOT", node="HB_HOUSTON", product="da_energy"
        )
    finally:
        engine.dispose()
    assert len(stored) == 24
    assert stored.attrs["model_version"] == folder.name
    assert stored.attrs["issue_time"] is not None
    assert (stored["horizon_h"] > 0).all()
    assert (stored["p10"] <= stored["p90"]).all()


@pytest.mark.slow
def test_cli_train_fits_every_node_in_parallel_when_nodes_repeated(
    houston_slice: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = houston_slice.assign(node="HB_COPY", price=houston_slice["price"] * 1.1)
    csv = _write_csv(pd.concat([houston_slice, copy]), tmp_path / "prices.csv")
    registry = tmp_path / "models"
    code = _run(
        [
            "forecast", "train", "--market", "ERCOT", "--node", "HB_HOUSTON",
            "--node", "HB_COPY", "--product", "da_energy", "--registry", str(registry),
            "--prices", str(csv), "--train-days", "60", "--workers", "2",
        ]
    )  # fmt: skip
    assert code == 0
    assert "2 model(s) fitted" in capsys.readouterr().out
    names = sorted(p.name for p in registry.iterdir())
    assert names[0].startswith("ERCOT-HB_COPY-da_energy-")
    assert names[1].startswith("ERCOT-HB_HOUSTON-da_energy-")
