"""Save and reload fitted forecasters: joblib + a JSON model card."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib

from forecasting.errors import ForecastInputError
from forecasting.price import QuantileForecaster

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a saved model is: identity, training window, features and scores."""

    model_version: str
    """Unique version string (key, training end and a hash of params + window)."""
    kind: str
    """Class name of the forecaster."""
    params: dict[str, Any]
    """Constructor parameters."""
    train_start_utc: str
    """First training target hour [ISO UTC]."""
    train_end_utc: str
    """Last training target hour [ISO UTC]."""
    n_train: int
    """Training rows (hours)."""
    features: list[str]
    """Feature names, in model order."""
    conformal_offset: float
    """Calibration widening of P10/P90 [unit of the series]."""
    scores: dict[str, float] = field(default_factory=dict)
    """Backtest or validation scores (see :func:`forecasting.metrics.score_forecast`)."""


def model_card(
    model: QuantileForecaster, *, scores: dict[str, float] | None = None
) -> ModelCard:
    """Return the card of a fitted forecaster."""
    model._check_fitted()
    return ModelCard(
        model_version=model.model_version_,
        kind=type(model).__name__,
        params=model.get_params(),
        train_start_utc=model.train_start_.strftime("%Y-%m-%dT%H:%M:%SZ"),
        train_end_utc=model.train_end_.strftime("%Y-%m-%dT%H:%M:%SZ"),
        n_train=int(model.n_train_),
        features=list(model.feature_names_),
        conformal_offset=float(model.conformal_offset_),
        scores={k: float(v) for k, v in (scores or {}).items()},
    )


def save_model(
    model: QuantileForecaster,
    directory: str | Path,
    *,
    scores: dict[str, float] | None = None,
) -> Path:
    """Save a fitted forecaster under ``directory/<model_version>/``.

    Parameters
    ----------
    model
        A fitted forecaster.
    directory
        Registry root; created when missing.
    scores
        Optional scores to record on the card.

    Returns
    -------
    pathlib.Path
        The model's folder (``model.joblib`` + ``card.json``).
    """
    card = model_card(model, scores=scores)
    folder = Path(directory) / card.model_version
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps(asdict(card), indent=2, sort_keys=True))
    logger.info("saved model %s to %s", card.model_version, folder)
    return folder


def load_model(folder: str | Path) -> tuple[QuantileForecaster, ModelCard]:
    """Reload a saved forecaster and its card, without refitting.

    Raises
    ------
    ForecastInputError
        When the folder lacks a model or card, or they disagree on the version.
    """
    path = Path(folder)
    model_path, card_path = path / MODEL_FILE, path / CARD_FILE
    if not model_path.is_file() or not card_path.is_file():
        msg = f"--model: {path} holds no {MODEL_FILE} + {CARD_FILE}"
        raise ForecastInputError(msg)
    card = ModelCard(**json.loads(card_path.read_text()))
    model = joblib.load(model_path)
    if not isinstance(model, QuantileForecaster):
        msg = f"--model: {model_path} is a {type(model).__name__}, not a forecaster"
        raise ForecastInputError(msg)
    if model.model_version_ != card.model_version:
        msg = (
            f"--model: {path} card says {card.model_version} but the model is "
            f"{model.model_version_}"
        )
        raise ForecastInputError(msg)
    return model, card
