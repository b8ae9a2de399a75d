"""Exceptions of the forecasting package."""

from __future__ import annotations


class ForecastInputError(ValueError):
    """Bad input to a forecaster, backtest or degradation function."""
