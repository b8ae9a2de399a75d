"""Keep a site's warranty ledger and turn what is left into a dispatch throughput budget.

A typical LFP storage warranty covers a number of years *or* a discharge throughput
(MWh, sometimes stated as equivalent full cycles per year), within operating limits such
as a largest average state of charge and a largest C-rate. The ledger compares what
telemetry says was consumed with what the warranty allows to date; the horizon budget
spreads the remaining throughput evenly over the remaining warranty time, so a site that
under-used early may catch up and one that over-used is held back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from forecasting.errors import ForecastInputError

logger = logging.getLogger(__name__)

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class WarrantyTerms:
    """What the warranty allows (mirrors the fleet file's ``battery.warranty``)."""

    years: float
    """Warranty period [year]."""
    throughput_mwh: float
    """Discharge throughput covered over the period, at the meter [MWh]."""
    energy_mwh: float
    """Warranted usable energy, to express throughput as full cycles [MWh]."""
    max_average_soc: float | None = None
    """Largest allowed time-averaged SoC, fraction (0-1), if the warranty sets one."""
    max_c_rate_per_h: float | None = None
    """Largest allowed C-rate (power / energy) [1/h], if the warranty sets one."""

    def validate(self) -> None:
        """Raise ForecastInputError naming the first field out of range."""
        if not self.years > 0:
            msg = f"years={self.years!r} must be > 0"
            raise ForecastInputError(msg)
        if not self.throughput_mwh > 0:
            msg = f"throughput_mwh={self.throughput_mwh!r} must be > 0"
            raise ForecastInputError(msg)
        if not self.energy_mwh > 0:
            msg = f"energy_mwh={self.energy_mwh!r} must be > 0"
            raise ForecastInputError(msg)
        if self.max_average_soc is not None and not 0 < self.max_average_soc <= 1:
            msg = f"max_average_soc={self.max_average_soc!r} must be in (0, 1]"
            raise ForecastInputError(msg)
        if self.max_c_rate_per_h is not None and not self.max_c_rate_per_h > 0:
            msg = f"max_c_rate_per_h={self.max_c_rate_per_h!r} must be > 0"
            raise ForecastInputError(msg)

    @property
    def efc_per_year(self) -> float:
        """Allowed equivalent full cycles a year [1/year]."""
        return self.throughput_mwh / self.energy_mwh / self.years


@dataclass(frozen=True, slots=True)
class WarrantyStatus:
    """The warranty ledger of one site at one date."""

    age_years: float
    """Time since commissioning [year]."""
    used_mwh: float
    """Discharge throughput consumed to date [MWh]."""
    allowed_to_date_mwh: float
    """Pro-rata allowance to date: throughput_mwh x age / years [MWh]."""
    remaining_mwh: float
    """Throughput left under the warranty [MWh] (negative when exceeded)."""
    headroom_mwh: float
    """Allowance to date minus use: positive means under-used [MWh]."""
    efc_per_year: float
    """Equivalent full cycles a year used so far [1/year]."""
    allowed_efc_per_year: float
    """Equivalent full cycles a year the warranty allows [1/year]."""
    violations: tuple[str, ...]
    """Operating-limit breaches found in the telemetry (empty when none)."""

    @property
    def headroom_fraction(self) -> float:
        """Remaining throughput as a fraction of the warranted total (may be < 0)."""
        total = self.used_mwh + self.remaining_mwh
        return self.remaining_mwh / total if total > 0 else 0.0


def warranty_status(
    terms: WarrantyTerms,
    *,
    age_days: float,
    used_mwh: float,
    average_soc: float | None = None,
    max_c_rate_per_h: float | None = None,
) -> WarrantyStatus:
    """Compare consumption to date with the warranty.

    Parameters
    ----------
    terms : WarrantyTerms
        What the warranty allows.
    age_days : float
        Days since commissioning (>= 0) [day].
    used_mwh : float
        Discharge throughput consumed to date, from the telemetry ledger [MWh].
    average_soc : float, optional
        Time-averaged SoC observed, fraction (0-1).
    max_c_rate_per_h : float, optional
        Largest C-rate observed [1/h].

    Returns
    -------
    WarrantyStatus
        Use, allowance, headroom and limit breaches.

    Raises
    ------
    ForecastInputError
        On invalid terms, a negative age or negative use.
    """
    terms.validate()
    if not age_days >= 0:
        msg = f"age_days={age_days!r} must be >= 0"
        raise ForecastInputError(msg)
    if not used_mwh >= 0:
        msg = f"used_mwh={used_mwh!r} must be >= 0"
        raise ForecastInputError(msg)
    age_years = age_days / DAYS_PER_YEAR
    allowed = terms.throughput_mwh * min(age_years / terms.years, 1.0)
    violations: list[str] = []
    if (
        terms.max_average_soc is not None
        and average_soc is not None
        and average_soc > terms.max_average_soc
    ):
        violations.append(
            f"average SoC {average_soc:.3f} exceeds the warranty's "
            f"max_average_soc={terms.max_average_soc:.3f}"
        )
    if (
        terms.max_c_rate_per_h is not None
        and max_c_rate_per_h is not None
        and max_c_rate_per_h > terms.max_c_rate_per_h * (1 + 1e-9)
    ):
        violations.append(
            f"C-rate {max_c_rate_per_h:.3f}/h exceeds the warranty's "
            f"max_c_rate_per_h={terms.max_c_rate_per_h:.3f}/h"
        )
    if used_mwh > terms.throughput_mwh:
        violations.append(
            f"throughput {used_mwh:.1f} MWh exceeds the warranted "
            f"{terms.throughput_mwh:.1f} MWh"
        )
    efc_per_year = used_mwh / terms.energy_mwh / age_years if age_years > 0 else 0.0
    return WarrantyStatus(
        age_years=age_years,
        used_mwh=used_mwh,
        allowed_to_date_mwh=allowed,
        remaining_mwh=terms.throughput_mwh - used_mwh,
        headroom_mwh=allowed - used_mwh,
        efc_per_year=efc_per_year,
        allowed_efc_per_year=terms.efc_per_year,
        violations=tuple(violations),
    )


def horizon_budget_mwh(
    terms: WarrantyTerms, *, age_days: float, used_mwh: float, horizon_h: float
) -> float | None:
    """Discharge throughput a dispatch horizon may use (the scenario's budget).

    Parameters
    ----------
    terms : WarrantyTerms
        What the warranty allows.
    age_days : float
        Days since commissioning at the start of the horizon [day].
    used_mwh : float
        Discharge throughput consumed to date [MWh].
    horizon_h : float
        Length of the dispatch horizon [h], > 0.

    Returns
    -------
    float or None
        ``throughput_budget_mwh`` for the site in the scenario: the remaining throughput
        spread evenly over the remaining warranty time, times the horizon (0 when the
        throughput is exhausted); None once the warranty period is over (no budget).

    Raises
    ------
    ForecastInputError
        On invalid terms or a non-positive horizon.
    """
    terms.validate()
    if not horizon_h > 0:
        msg = f"horizon_h={horizon_h!r} must be > 0"
        raise ForecastInputError(msg)
    if not (age_days >= 0 and used_mwh >= 0):
        msg = f"age_days={age_days!r} and used_mwh={used_mwh!r} must be >= 0"
        raise ForecastInputError(msg)
    remaining_h = (terms.years * DAYS_PER_YEAR - age_days) * HOURS_PER_DAY
    if remaining_h <= 0:
        return None
    remaining_mwh = max(terms.throughput_mwh - used_mwh, 0.0)
    return remaining_mwh * min(horizon_h / remaining_h, 1.0)
