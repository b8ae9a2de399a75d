"""Fit many forecasters in parallel: a process pool, or any executor (e.g. Dask's)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import pandas as pd

from forecasting.price import PriceForecaster

logger = logging.getLogger(__name__)

SeriesKey = tuple[str, str, str]
"""(market, node, product)."""


def _fit_one(
    key: SeriesKey,
    y: pd.Series,
    params: dict[str, Any],
    issue_time: pd.Timestamp | None,
) -> tuple[SeriesKey, PriceForecaster]:
    market, node, product = key
    model = PriceForecaster(market=market, node=node, product=product, **params)
    model.fit(y, issue_time=issue_time)
    return key, model


def fit_many(
    series: Mapping[SeriesKey, pd.Series],
    *,
    params: dict[str, Any] | None = None,
    issue_time: pd.Timestamp | None = None,
    executor: Executor | None = None,
    max_workers: int = 2,
) -> dict[SeriesKey, PriceForecaster]:
    """Fit one :class:`~forecasting.price.PriceForecaster` per series, in parallel.

    Parameters
    ----------
    series
        Cleaned hourly price series by (market, node, product).
    params
        Model parameters shared by all fits.
    issue_time
        Fit each model as of this UTC time (``None``: all history).
    executor
        Any :class:`concurrent.futures.Executor` — e.g. ``client.get_executor()`` of
        a ``dask.distributed.Client`` when a Dask cluster is configured. When
        ``None``, a local process pool of ``max_workers`` is created and closed here.
    max_workers
        Workers of the local process pool.

    Returns
    -------
    dict
        Fitted models by key.
    """
    shared = dict(params or {})
    own = executor is None
    pool: Executor = (
        executor if executor is not None else ProcessPoolExecutor(max_workers)
    )
    try:
        futures = [
            pool.submit(_fit_one, key, y, shared, issue_time)
            for key, y in series.items()
        ]
        fitted = dict(f.result() for f in futures)
    finally:
        if own:
            pool.shutdown()
    logger.info("fitted %d models", len(fitted))
    return fitted
