"""Quantile price forecasters (P10/P50/P90) over issue-time-safe features."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from dispatch.markets import available_markets, market_timezone
from forecasting.errors import ForecastInputError
from forecasting.features import (
    FEATURE_NAMES,
    POOL_INDEX,
    build_features,
    cross_node_feature_names,
    cross_node_features,
    issue_time_for,
    known_history,
    operating_day_index,
    pooled_feature_names,
    pooled_features,
)
from forecasting.types import (
    ISSUE_HOUR_LOCAL,
    PRODUCTS,
    QUANTILE_COLUMNS,
    QUANTILES,
    canonical_product,
)

logger = logging.getLogger(__name__)

HISTORY_DAYS_FOR_PREDICT: int = 15
"""Days of history a prediction needs (the longest lag is 14 days)."""


class QuantileForecaster:
    """Day-ahead quantile forecaster of an hourly series (prices or load).

    One :class:`~sklearn.ensemble.HistGradientBoostingRegressor` per quantile
    (quantile loss for P10/P90, absolute error for P50) over calendar features in
    local time and lags known at the issue time. P10/P90 are then widened or
    narrowed by split-conformal calibration (CQR) on the last ``calibration_days``
    of the training window, which are held out of the fit.

    Parameters
    ----------
    tz
        Local time zone of the market or site.
    product
        Product name (decides data availability, see
        :func:`forecasting.features.known_at`); ``load`` for metered load.
    issue_hour
        Local hour on D-1 when the forecast for D is issued (0-23).
    train_days
        Trailing training window length [days].
    calibration_days
        Days at the end of the training window held out for calibration (0: none).
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to each gradient-boosting model.
    target_mode
        ``level`` (forecast the price) or ``weekly`` (forecast the deviation from
        the mean of the same hour over the last 7 days).
    cross_nodes
        Other nodes whose series (same product) are passed as ``exog`` to
        :meth:`fit` and :meth:`predict`; their spreads to this node become features
        (:func:`forecasting.features.cross_node_features`). Empty: none.
    p50_asinh_scale
        When set, the P50 model is fitted on ``asinh(y / scale)`` and mapped back
        (the median commutes with a monotone map; spikes weigh less on the trees).
    p50_full_window
        Fit the P50 model on the whole training window, calibration days included
        (they only calibrate P10/P90).
    p50_max_iter, p50_learning_rate
        Boosting iterations and learning rate of the P50 model (``None``: those of
        the P10/P90 models).
    p50_pool
        Also fit a second P50 model on the rows of this node *and* of every cross
        node (each row with its node's own features, the spreads of every node of
        the pool to it and the node's position in the pool as a categorical
        feature, see :func:`forecasting.features.pooled_features`; (1 +
        len(cross_nodes)) times the rows of one node); the P50 is the mean of the
        two models' forecasts. No effect without ``cross_nodes``.
    n_threads
        OpenMP threads per model fit/predict.
    random_state
        Seed of the gradient-boosting models (no global RNG is used).
    """

    def __init__(
        self,
        *,
        tz: str = "America/Chicago",
        product: str = "da_energy",
        issue_hour: int = ISSUE_HOUR_LOCAL,
        train_days: int = 730,
        calibration_days: int = 28,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        target_mode: str = "level",
        cross_nodes: Iterable[str] = (),
        p50_asinh_scale: float | None = None,
        p50_full_window: bool = False,
        p50_max_iter: int | None = None,
        p50_learning_rate: float | None = None,
        p50_pool: bool = False,
        n_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.tz = tz
        self.product = product
        self.issue_hour = issue_hour
        self.train_days = train_days
        self.calibration_days = calibration_days
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.target_mode = target_mode
        self.cross_nodes = tuple(cross_nodes)
        self.p50_asinh_scale = p50_asinh_scale
        self.p50_full_window = p50_full_window
        self.p50_max_iter = p50_max_iter
        self.p50_learning_rate = p50_learning_rate
        self.p50_pool = p50_pool
        self.n_threads = n_threads
        self.random_state = random_state

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (scikit-learn contract)."""
        return {
            "tz": self.tz,
            "product": self.product,
            "issue_hour": self.issue_hour,
            "train_days": self.train_days,
            "calibration_days": self.calibration_days,
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
            "target_mode": self.target_mode,
            "cross_nodes": list(self.cross_nodes),
            "p50_asinh_scale": self.p50_asinh_scale,
            "p50_full_window": self.p50_full_window,
            "p50_max_iter": self.p50_max_iter,
            "p50_learning_rate": self.p50_learning_rate,
            "p50_pool": self.p50_pool,
            "n_threads": self.n_threads,
            "random_state": self.random_state,
        }

    def _regressor(
        self, alpha: float, categorical: list[bool] | None = None
    ) -> HistGradientBoostingRegressor:
        common: dict[str, Any] = {
            "max_iter": self.max_iter,
            "learning_rate": self.learning_rate,
            "max_leaf_nodes": self.max_leaf_nodes,
            "min_samples_leaf": self.min_samples_leaf,
            "l2_regularization": self.l2_regularization,
            "random_state": self.random_state,
            "early_stopping": False,
        }
        if alpha == 0.5:
            if self.p50_max_iter is not None:
                common["max_iter"] = self.p50_max_iter
            if self.p50_learning_rate is not None:
                common["learning_rate"] = self.p50_learning_rate
            return HistGradientBoostingRegressor(
                loss="absolute_error", categorical_features=categorical, **common
            )
        return HistGradientBoostingRegressor(loss="quantile", quantile=alpha, **common)

    def _validate(self) -> None:
        if not 0 <= self.issue_hour <= 23:
            msg = f"issue_hour={self.issue_hour} must be within 0-23"
            raise ForecastInputError(msg)
        if self.train_days < 14:
            msg = f"train_days={self.train_days} must be >= 14"
            raise ForecastInputError(msg)
        if not 0 <= self.calibration_days < self.train_days:
            msg = (
                f"calibration_days={self.calibration_days} must be within "
                f"0..train_days-1={self.train_days - 1}"
            )
            raise ForecastInputError(msg)
        if self.p50_asinh_scale is not None and not self.p50_asinh_scale > 0:
            msg = f"p50_asinh_scale={self.p50_asinh_scale} must be > 0 (or None)"
            raise ForecastInputError(msg)
        if len(set(self.cross_nodes)) != len(self.cross_nodes):
            msg = f"cross_nodes={list(self.cross_nodes)} has a repeated node"
            raise ForecastInputError(msg)
        if self._pooled() and self._own_name() in self.cross_nodes:
            msg = (
                f"cross_nodes={list(self.cross_nodes)} contains the forecast node "
                f"{self._own_name()!r} itself"
            )
            raise ForecastInputError(msg)

    def _own_name(self) -> str:
        """Name of the forecast node in a pool (``target`` when it has none)."""
        return str(getattr(self, "node", "target"))

    def _pooled(self) -> bool:
        return bool(self.p50_pool and self.cross_nodes)

    def _pool_frames(
        self, y: pd.Series, days: list[dt.date], exog: Mapping[str, pd.Series]
    ) -> dict[str, pd.DataFrame]:
        """Own features of every node of the pool (this node first), same rows."""
        series = {self._own_name(): y, **exog}
        return {
            n: build_features(
                s, days, tz=self.tz, product=self.product, issue_hour=self.issue_hour
            )
            for n, s in series.items()
        }

    def _pooled_rows(
        self,
        y: pd.Series,
        days: list[dt.date],
        exog: Mapping[str, pd.Series],
        calib_start: pd.Timestamp | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """P50 training rows of every node of the pool: features and deviation."""
        series = {self._own_name(): y, **exog}
        frames = self._pool_frames(y, days, exog)
        xs, ts = [], []
        for node, s in series.items():
            f = pooled_features(frames, node)
            target = s.reindex(f.index).to_numpy(float)
            keep = ~np.isnan(target)
            if calib_start is not None:
                row_day = f.index.tz_convert(self.tz).normalize().tz_localize(None)
                keep &= np.asarray(row_day < calib_start)
            xs.append(f.to_numpy(float, copy=True)[keep])
            ts.append(target[keep] - self._reference(f)[keep])
        x = np.vstack(xs)
        x[:, np.isnan(x).all(axis=0)] = 0.0
        return x, np.concatenate(ts)

    def _exog(self, exog: Mapping[str, pd.Series] | None) -> dict[str, pd.Series]:
        """Return the ``cross_nodes`` series of ``exog`` in order, checking they are there."""
        if not self.cross_nodes:
            return {}
        given = dict(exog or {})
        missing = [n for n in self.cross_nodes if n not in given]
        if missing:
            msg = (
                f"exog: missing series for cross node(s) {missing}; the model "
                f"needs {list(self.cross_nodes)}"
            )
            raise ForecastInputError(msg)
        return {n: given[n] for n in self.cross_nodes}

    def _features(
        self,
        y: pd.Series,
        days: list[dt.date],
        exog: Mapping[str, pd.Series],
    ) -> pd.DataFrame:
        """Own features plus cross-node spreads, for every hour of ``days``."""
        own = build_features(
            y, days, tz=self.tz, product=self.product, issue_hour=self.issue_hour
        )
        if not exog:
            return own
        cross = cross_node_features(
            own, exog, tz=self.tz, product=self.product, issue_hour=self.issue_hour
        )
        return pd.concat([own, cross], axis=1)

    def _fw(self, v: np.ndarray) -> np.ndarray:
        scale = self.p50_asinh_scale
        return v if scale is None else np.arcsinh(v / scale)

    def _bw(self, v: np.ndarray) -> np.ndarray:
        scale = self.p50_asinh_scale
        return v if scale is None else scale * np.sinh(v)

    def fit(
        self,
        y: pd.Series,
        *,
        issue_time: pd.Timestamp | None = None,
        exog: Mapping[str, pd.Series] | None = None,
    ) -> Self:
        """Fit on the history known at ``issue_time``.

        Parameters
        ----------
        y
            Hourly history on a UTC DatetimeIndex, missing values NaN (as
            :func:`forecasting.data.clean_series` returns it).
        issue_time
            Fit as of this UTC time: only values known then are used, and only
            operating days whose actuals are all known then become targets.
            ``None``: the whole history.
        exog
            Node -> hourly series of the same product for each of ``cross_nodes``
            (more are ignored); truncated at ``issue_time`` like ``y``.

        Returns
        -------
        QuantileForecaster
            ``self``, fitted.

        Raises
        ------
        ForecastInputError
            When ``y`` has no DatetimeIndex or too few complete days to train on,
            or a series of ``cross_nodes`` is missing from ``exog``.
        """
        self._validate()
        others = self._exog(exog)
        if not isinstance(y.index, pd.DatetimeIndex) or y.index.tz is None:
            msg = "y: index must be a tz-aware (UTC) DatetimeIndex"
            raise ForecastInputError(msg)
        if issue_time is not None:
            y = known_history(y, issue_time, product=self.product, tz=self.tz)
            others = {
                n: known_history(s, issue_time, product=self.product, tz=self.tz)
                for n, s in others.items()
            }
        y = y.dropna()
        if y.empty:
            msg = "y: no known, non-missing values to train on"
            raise ForecastInputError(msg)
        local = y.index.tz_convert(self.tz)
        last_day = local[-1].date()
        # The last local day may be incomplete: target only days before it, unless complete.
        if local[-1].hour < 23:
            last_day -= dt.timedelta(days=1)
        first_day = max(
            local[0].date() + dt.timedelta(days=15),
            last_day - dt.timedelta(days=self.train_days - 1),
        )
        if last_day < first_day + dt.timedelta(days=max(self.calibration_days, 7)):
            msg = (
                f"y: only {len(y)} hourly values from {y.index[0]} to {y.index[-1]}; "
                f"need at least {15 + max(self.calibration_days, 7) + 1} days of history"
            )
            raise ForecastInputError(msg)
        days = [d.date() for d in pd.date_range(first_day, last_day, freq="D")]
        features = self._features(y, days, others)
        target = y.reindex(features.index)
        keep = target.notna().to_numpy()
        features, target = features[keep], target[keep]
        row_day = features.index.tz_convert(self.tz).normalize().tz_localize(None)
        calib_start = pd.Timestamp(
            last_day - dt.timedelta(days=self.calibration_days - 1)
        )
        is_calib = np.asarray(row_day >= calib_start) if self.calibration_days else None
        fit_mask = ~is_calib if is_calib is not None else np.ones(len(target), bool)
        ref = self._reference(features)
        x_all = features.to_numpy(float, copy=True)
        # A column with no value in the window (e.g. a node with no history yet)
        # carries no information; a constant keeps the binning valid.
        x_all[:, np.isnan(x_all).all(axis=0)] = 0.0
        dev = target.to_numpy(float) - ref
        p50_mask = np.ones(len(dev), bool) if self.p50_full_window else fit_mask
        pool_categorical: list[bool] | None = None
        x_pool, dev_pool = np.zeros((0, 0)), np.zeros(0)
        if self._pooled():
            x_pool, dev_pool = self._pooled_rows(
                y,
                days,
                others,
                None
                if self.p50_full_window or not self.calibration_days
                else calib_start,
            )
            pool = [self._own_name(), *self.cross_nodes]
            pool_categorical = [
                name == POOL_INDEX for name in pooled_feature_names(pool)
            ]
        # One OpenMP thread per fit: parallelism comes from fitting many series at
        # once (forecasting.parallel); nested threads oversubscribe a busy machine.
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            self.models_ = {}
            for alpha, col in zip(QUANTILES, QUANTILE_COLUMNS, strict=True):
                if col == "p50":
                    self.models_[col] = self._regressor(alpha).fit(
                        x_all[p50_mask], self._fw(dev[p50_mask])
                    )
                    if self._pooled():
                        self.models_["p50_pool"] = self._regressor(
                            alpha, pool_categorical
                        ).fit(x_pool, self._fw(dev_pool))
                else:
                    self.models_[col] = self._regressor(alpha).fit(
                        x_all[fit_mask], dev[fit_mask]
                    )
        self.conformal_offset_ = 0.0
        if is_calib is not None and is_calib.any():
            x_cal = x_all[is_calib]
            y_cal = target.to_numpy(float)[is_calib]
            with threadpool_limits(limits=self.n_threads, user_api="openmp"):
                lo = self.models_["p10"].predict(x_cal) + ref[is_calib]
                hi = self.models_["p90"].predict(x_cal) + ref[is_calib]
            nonconformity = np.maximum(lo - y_cal, y_cal - hi)
            level = min(1.0, 0.8 * (1 + 1 / len(y_cal)))
            self.conformal_offset_ = float(np.quantile(nonconformity, level))
        self.feature_names_ = [
            *FEATURE_NAMES,
            *cross_node_feature_names(self.cross_nodes),
        ]
        self.pool_feature_names_ = (
            pooled_feature_names([self._own_name(), *self.cross_nodes])
            if self._pooled()
            else []
        )
        self.train_start_ = pd.Timestamp(features.index[0])
        self.train_end_ = pd.Timestamp(features.index[-1])
        self.n_train_ = len(target)
        self.n_train_pool_ = len(dev_pool)
        self.model_version_ = self._version()
        logger.info(
            "fitted %s: %d rows %s..%s, conformal offset %.3f",
            self.model_version_,
            self.n_train_,
            self.train_start_,
            self.train_end_,
            self.conformal_offset_,
        )
        return self

    def _reference(self, features: pd.DataFrame) -> np.ndarray:
        """Return the level the models forecast a deviation from (0 in ``level`` mode)."""
        if self.target_mode == "level":
            return np.zeros(len(features))
        if self.target_mode in ("weekly", "median"):
            column = (
                "week_mean_at_hour"
                if self.target_mode == "weekly"
                else "week_median_at_hour"
            )
            ref = features[column].to_numpy(float)
            return np.nan_to_num(ref, nan=0.0)
        msg = f"target_mode={self.target_mode!r} must be 'level', 'weekly' or 'median'"
        raise ForecastInputError(msg)

    def _version(self) -> str:
        payload = json.dumps(
            {
                "params": self.get_params(),
                "train_start": str(self.train_start_),
                "train_end": str(self.train_end_),
                "n_train": self.n_train_,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:10]
        return f"{self.product}-{self.train_end_:%Y%m%dT%H}-{digest}"

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            msg = f"{type(self).__name__} is not fitted: call fit() first"
            raise NotFittedError(msg)

    def predict_features(
        self, features: pd.DataFrame, p50_features: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Return P10/P50/P90 for rows of a feature frame (monotone, calibrated).

        ``p50_features``: the rows' :func:`forecasting.features.pooled_features`,
        needed (only) by a model with a pooled P50 (``p50_pool`` with cross nodes):
        its P50 is the mean of the node's own P50 model and the pooled one.
        """
        self._check_fitted()
        x = features[self.feature_names_].to_numpy(float)
        x_pool = None
        if "p50_pool" in self.models_:
            if p50_features is None:
                msg = (
                    "p50_features: the P50 model is pooled over "
                    f"{[self._own_name(), *self.cross_nodes]}; pass its pooled features"
                )
                raise ForecastInputError(msg)
            x_pool = p50_features[self.pool_feature_names_].to_numpy(float)
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            raw = np.column_stack(
                [
                    self._bw(self.models_[c].predict(x))
                    if c == "p50"
                    else self.models_[c].predict(x)
                    for c in QUANTILE_COLUMNS
                ]
            )
            if x_pool is not None:
                pooled = self._bw(self.models_["p50_pool"].predict(x_pool))
                raw[:, 1] = 0.5 * (raw[:, 1] + pooled)
        raw += self._reference(features)[:, None]
        raw[:, 0] -= self.conformal_offset_
        raw[:, 2] += self.conformal_offset_
        ordered = np.sort(raw, axis=1)
        return pd.DataFrame(
            ordered, index=features.index, columns=list(QUANTILE_COLUMNS)
        )

    def predict(
        self,
        y: pd.Series,
        day: dt.date,
        exog: Mapping[str, pd.Series] | None = None,
    ) -> pd.DataFrame:
        """Forecast every hour of operating ``day`` as issued on D-1 at the issue hour.

        Parameters
        ----------
        y
            Hourly history on a UTC DatetimeIndex; anything not known at the issue
            time (see :func:`forecasting.features.known_at`) is discarded first, so
            data after the issue time can never change the forecast.
        day
            The local operating day.
        exog
            Node -> hourly series for each of ``cross_nodes``, truncated like ``y``.

        Returns
        -------
        pandas.DataFrame
            UTC index of the day's 23/24/25 hours; columns ``p10, p50, p90``
            (unit of ``y``) and ``issue_time_utc``, ``horizon_h``; ``attrs`` carries
            ``issue_time`` and ``model_version``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            When called before :meth:`fit`.
        """
        self._check_fitted()
        issue = self.issue_time(day)
        window_start = issue - pd.Timedelta(days=HISTORY_DAYS_FOR_PREDICT + 1)
        window_end = issue + pd.Timedelta(days=2)
        recent = y[(y.index >= window_start) & (y.index < window_end)]
        known = known_history(recent, issue, product=self.product, tz=self.tz)
        others = {
            n: known_history(
                s[(s.index >= window_start) & (s.index < window_end)],
                issue,
                product=self.product,
                tz=self.tz,
            )
            for n, s in self._exog(exog).items()
        }
        features = self._features(known, [day], others)
        pooled = None
        if self._pooled():
            frames = self._pool_frames(known, [day], others)
            pooled = pooled_features(frames, self._own_name())
        out = self.predict_features(features, pooled)
        out["issue_time_utc"] = issue
        out["horizon_h"] = (out.index - issue) / pd.Timedelta(hours=1)
        out.attrs["issue_time"] = issue
        out.attrs["model_version"] = self.model_version_
        return out

    def predict_days(
        self,
        y: pd.Series,
        days: Iterable[dt.date],
        exog: Mapping[str, pd.Series] | None = None,
    ) -> pd.DataFrame:
        """Concatenate :meth:`predict` over ``days`` (each with its own issue time)."""
        parts = [self.predict(y, d, exog) for d in days]
        if not parts:
            return pd.DataFrame(
                columns=[*QUANTILE_COLUMNS, "issue_time_utc", "horizon_h"]
            )
        return pd.concat(parts)

    def issue_time(self, day: dt.date) -> pd.Timestamp:
        """Return the UTC issue time of the forecast for operating ``day``."""
        return issue_time_for(day, self.tz, self.issue_hour)

    def hours(self, day: dt.date) -> pd.DatetimeIndex:
        """Return the UTC hours of operating ``day`` (23/24/25)."""
        return operating_day_index(day, self.tz)


DA_ENERGY_DEFAULTS: dict[str, Any] = {
    "p50_asinh_scale": 20.0,
    "p50_full_window": True,
    "p50_max_iter": 300,
    "p50_learning_rate": 0.05,
    "p50_pool": True,
}
"""P50 settings of day-ahead energy models, chosen on ERCOT hubs, 2024 (tuning data)."""


class PriceForecaster(QuantileForecaster):
    """Quantile forecaster of one (market, node, product) price series.

    Parameters
    ----------
    market
        ISO name with a rules file (``ERCOT``, ``CAISO``); its time zone comes from them.
    node
        Settlement point or ``SYSTEM`` for ancillary services.
    product
        One of :data:`forecasting.types.PRODUCTS` or an alias (``spin``).
    **params
        Model parameters of :class:`QuantileForecaster` (except ``tz``/``product``);
        for ``da_energy`` the P50 settings default to :data:`DA_ENERGY_DEFAULTS`.
    """

    def __init__(
        self,
        *,
        market: str = "ERCOT",
        node: str = "HB_HOUSTON",
        product: str = "da_energy",
        **params: Any,
    ) -> None:
        if market not in available_markets():
            msg = f"--market: unknown market {market!r}; expected one of {available_markets()}"
            raise ForecastInputError(msg)
        canon = canonical_product(product)
        if canon not in PRODUCTS:
            msg = f"--product: unknown product {product!r}; expected one of {list(PRODUCTS)}"
            raise ForecastInputError(msg)
        params.pop("tz", None)
        if canon == "da_energy":
            for key, value in DA_ENERGY_DEFAULTS.items():
                params.setdefault(key, value)
        super().__init__(tz=market_timezone(market), product=canon, **params)
        self.market = market
        self.node = node

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (scikit-learn contract)."""
        params = super().get_params()
        params.pop("tz")
        return {"market": self.market, "node": self.node, **params}

    def _version(self) -> str:
        return f"{self.market}-{self.node}-{super()._version()}"
