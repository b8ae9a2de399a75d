"""Shared names, aliases and market constants of the forecasting package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from typing import TypeAlias

    import pandas as pd

    FloatSeries: TypeAlias = pd.Series
    """A float Series on a UTC DatetimeIndex (prices in USD/MWh or USD/MW-h, load in kW)."""


def __getattr__(name: str) -> object:
    """Resolve ``FloatSeries`` on first use, so that importing this module is cheap.

    The CLI imports this module at start-up and must not pay for pandas there.
    """
    if name == "FloatSeries":
        import pandas as pd

        return pd.Series
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


QUANTILES: Final[tuple[float, float, float]] = (0.1, 0.5, 0.9)
"""The quantile levels every forecaster returns, as fractions (0-1)."""

QUANTILE_COLUMNS: Final[tuple[str, str, str]] = ("p10", "p50", "p90")
"""Column names of a quantile forecast, in the order of :data:`QUANTILES`."""

PRODUCTS: Final[tuple[str, ...]] = (
    "da_energy",
    "rt_energy",
    "reg_up",
    "reg_down",
    "rrs_spin",
    "nonspin",
    "ecrs",
)
"""Products of the normalized price layout (``../shared/data``)."""

PRODUCT_ALIASES: Final[dict[str, str]] = {
    "energy_da": "da_energy",
    "da": "da_energy",
    "energy_day_ahead": "da_energy",
    "energy_rt": "rt_energy",
    "rt": "rt_energy",
    "energy_real_time": "rt_energy",
    "spin": "rrs_spin",
    "rrs": "rrs_spin",
    "regup": "reg_up",
    "regdn": "reg_down",
    "reg_dn": "reg_down",
    "nspin": "nonspin",
}
"""The issue's product names (and common ISO short names) mapped onto :data:`PRODUCTS`."""

REALTIME_PRODUCTS: Final[frozenset[str]] = frozenset({"rt_energy"})
"""Products whose price is known only once the interval has ended."""

DAY_AHEAD_PUBLISH_HOUR_LOCAL: Final[int] = 14
"""Local hour on D-1 by which day-ahead results for D are published (conservative:
ERCOT posts ≈13:30 CPT, CAISO ≈13:00 PPT)."""

ISSUE_HOUR_LOCAL: Final[int] = 9
"""Default local hour on D-1 at which a forecast for operating day D is issued
(before the 10:00 day-ahead close in ERCOT and CAISO)."""


def canonical_product(name: str) -> str:
    """Return the canonical product name for ``name`` (case-insensitive alias lookup).

    Parameters
    ----------
    name
        A product name: one of :data:`PRODUCTS` or an alias of :data:`PRODUCT_ALIASES`.

    Returns
    -------
    str
        The canonical name, or ``name`` lower-cased when it is unknown (callers that
        need a known product validate against :data:`PRODUCTS`).
    """
    key = name.strip().lower()
    return PRODUCT_ALIASES.get(key, key)
