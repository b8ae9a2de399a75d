"""Score daily device behaviour with an IsolationForest fitted on healthy days."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError

from forecasting.errors import ForecastInputError
from forecasting.health.findings import ACTIONS, Finding, FindingKind, Severity

if TYPE_CHECKING:
    import numpy.typing as npt

ANOMALY_FEATURES = ("spread_rise_mv", "temp_delta_c", "rte_drop", "lost_fraction")
"""Peer- or baseline-relative daily features the forest sees."""

SCALE_FLOORS = (0.5, 0.5, 0.002, 0.01)
"""Smallest robust scale of each of :data:`ANOMALY_FEATURES` (mV, °C, -, -)."""


def anomaly_features(features: pd.DataFrame, baseline_days: int = 14) -> pd.DataFrame:
    """Make the peer- and baseline-relative features of :data:`ANOMALY_FEATURES`.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features (:func:`forecasting.health.features.daily_features`).
    baseline_days : int, default 14
        Days at the start of each device that set its baselines.

    Returns
    -------
    pandas.DataFrame
        ``site_id``, ``dev_id``, ``day`` and: ``spread_rise_mv`` [mV] (mid-SoC
        spread over the device's baseline median), ``temp_delta_c`` [°C] (temperature
        at power over the site-day median), ``rte_drop`` (fraction, baseline median
        minus the day's RTE, 0 when not measurable) and ``lost_fraction`` (0-1, bad
        plus missing samples).
    """
    frame = features.sort_values(["site_id", "dev_id", "day"]).copy()
    by_device = frame.groupby(["site_id", "dev_id"], sort=False)
    position = by_device.cumcount()
    in_base = position < baseline_days
    base_spread = (
        frame["spread_mid_soc_mv"].where(in_base).groupby([frame.site_id, frame.dev_id])
    ).transform("median")
    base_rte = (
        frame["rte"].where(in_base).groupby([frame.site_id, frame.dev_id])
    ).transform("median")
    site_day_median = frame.groupby(["site_id", "day"])["temp_at_power_c"].transform(
        "median"
    )
    out = frame[["site_id", "dev_id", "day"]].copy()
    out["spread_rise_mv"] = (frame["spread_mid_soc_mv"] - base_spread).fillna(0.0)
    out["temp_delta_c"] = (frame["temp_at_power_c"] - site_day_median).fillna(0.0)
    out["rte_drop"] = (base_rte - frame["rte"]).fillna(0.0)
    out["lost_fraction"] = (frame["bad_fraction"] + frame["gap_fraction"]).fillna(0.0)
    return out


class DailyAnomalyDetector(BaseEstimator):  # type: ignore[misc]
    """IsolationForest over :data:`ANOMALY_FEATURES`, plus a robust range check.

    An isolation forest cannot tell a day far outside its training range from the
    most extreme training day (the splits stop at the training range), so a day is
    also anomalous when any feature's robust z against the training days exceeds
    ``z_max``.

    Parameters
    ----------
    n_estimators : int, default 200
        Trees in the forest.
    train_quantile : float, default 0.01
        A day is anomalous when its score is below this quantile (fraction 0-1) of
        the training scores (IsolationForest saturates: a day far outside the
        training range scores about as low as the most extreme training day).
    z_max : float, default 8.0
        Robust z (per feature, scale floored by :data:`SCALE_FLOORS`) above which a
        day is anomalous whatever its forest score.
    random_state : int, default 0
        Seed of the forest.

    Attributes
    ----------
    forest_ : IsolationForest
        The fitted forest.
    threshold_ : float
        Score below which a day is anomalous.
    center_, scale_ : numpy.ndarray
        Median and robust scale of each feature over the training days.
    """

    def __init__(
        self,
        n_estimators: int = 200,
        train_quantile: float = 0.01,
        z_max: float = 8.0,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.train_quantile = train_quantile
        self.z_max = z_max
        self.random_state = random_state

    def _matrix(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        missing = [c for c in ANOMALY_FEATURES if c not in features]
        if missing:
            msg = f"anomaly features lack column(s) {', '.join(missing)}"
            raise ForecastInputError(msg)
        return features[list(ANOMALY_FEATURES)].to_numpy(dtype=float)

    def fit(self, features: pd.DataFrame, y: object = None) -> Self:
        """Fit the forest on healthy days; set ``threshold_``.

        Raises
        ------
        ForecastInputError
            When a column is missing or fewer than 10 rows are given.
        """
        x = self._matrix(features)
        if x.shape[0] < 10:
            msg = f"features has {x.shape[0]} rows; the forest needs at least 10"
            raise ForecastInputError(msg)
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(x)
        scores = self.forest_.score_samples(x)
        self.threshold_ = float(np.quantile(scores, self.train_quantile))
        self.center_ = np.median(x, axis=0)
        mad = np.median(np.abs(x - self.center_), axis=0)
        self.scale_ = np.maximum(1.4826 * mad, np.array(SCALE_FLOORS))
        return self

    def score_samples(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return the forest's score per row (lower is more anomalous)."""
        if not hasattr(self, "forest_"):
            msg = "DailyAnomalyDetector is not fitted: call fit() first"
            raise NotFittedError(msg)
        return self.forest_.score_samples(self._matrix(features))

    def max_z(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return each row's largest robust z over the features."""
        if not hasattr(self, "forest_"):
            msg = "DailyAnomalyDetector is not fitted: call fit() first"
            raise NotFittedError(msg)
        z = np.abs(self._matrix(features) - self.center_) / self.scale_
        return z.max(axis=1)

    def predict(self, features: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Return True for rows scored below ``threshold_`` or beyond ``z_max``."""
        return (self.score_samples(features) < self.threshold_) | (
            self.max_z(features) > self.z_max
        )


def detect_anomalies(
    features: pd.DataFrame,
    *,
    baseline_days: int = 30,
    persist_days: int = 3,
    random_state: int = 0,
) -> list[Finding]:
    """Fit the forest on every device's first days; flag persistent anomalies after.

    Statistic: the forest score of :func:`anomaly_features` (and the robust range
    check of :class:`DailyAnomalyDetector`); a finding (severity info) when a
    device's day is anomalous on ``persist_days`` consecutive days.

    Parameters
    ----------
    features : pandas.DataFrame
        Daily features of one site.
    baseline_days : int, default 30
        Days per device used to fit (and skipped when scoring).
    persist_days : int, default 3
        Consecutive anomalous days before a finding.
    random_state : int, default 0
        Seed of the forest.

    Returns
    -------
    list[Finding]
        One per device-day past ``persist_days``; empty when there is too little
        history.
    """
    rel = anomaly_features(features, baseline_days=min(14, baseline_days))
    position = rel.groupby(["site_id", "dev_id"]).cumcount()
    train = rel[position < baseline_days]
    test = rel[position >= baseline_days]
    if len(train) < 10 or test.empty:
        return []
    model = DailyAnomalyDetector(random_state=random_state).fit(train)
    scores = pd.Series(model.score_samples(test), index=test.index)
    flags = pd.Series(model.predict(test), index=test.index)
    findings: list[Finding] = []
    for (site_id, dev_id), device in test.groupby(["site_id", "dev_id"], sort=True):
        run = 0
        for idx, day in zip(device.index, device["day"], strict=True):
            score = float(scores[idx])
            run = run + 1 if bool(flags[idx]) else 0
            if run >= persist_days:
                findings.append(
                    Finding(
                        site_id=str(site_id),
                        dev_id=str(dev_id),
                        kind=FindingKind.ANOMALY,
                        severity=Severity.INFO,
                        day=day,
                        statistic="IsolationForest score",
                        value=score,
                        threshold=model.threshold_,
                        action=ACTIONS[FindingKind.ANOMALY],
                        detail={
                            c: round(float(device.at[idx, c]), 5)
                            for c in ANOMALY_FEATURES
                        },
                    )
                )
    return findings
