"""Grade a used battery unit for second life from its SoH, fade, spread and history."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from forecasting.errors import ForecastInputError

RULES_RESOURCE = "secondlife_rules.toml"
"""File name of the grading rules inside ``forecasting/health``."""

LIMIT_FIELDS = (
    "min_soh",
    "max_fade_per_year",
    "max_spread_mv",
    "max_efc",
    "max_critical_alerts",
)


@dataclass(frozen=True, slots=True)
class GradeRule:
    """One grade's limits (a unit must meet all of them)."""

    name: str
    """Grade name, e.g. ``A``."""
    min_soh: float
    """Lowest SoH (fraction 0-1)."""
    max_fade_per_year: float
    """Fastest fade (fraction of nameplate per year)."""
    max_spread_mv: float
    """Widest mid-SoC cell-voltage spread [mV]."""
    max_efc: float
    """Most equivalent full cycles so far."""
    max_critical_alerts: int
    """Most critical alerts in its history."""
    applications: tuple[str, ...]
    """Applications a unit of this grade still fits."""


@dataclass(frozen=True, slots=True)
class Grade:
    """The grading of one unit."""

    name: str
    """Grade name (``R`` = recycling)."""
    applications: tuple[str, ...]
    """Applications it still fits."""
    reasons: tuple[str, ...]
    """Why it missed each better grade, best grade first."""


def load_rules(path: Path | None = None) -> tuple[list[GradeRule], GradeRule]:
    """Read the grading rules (the packaged file unless ``path`` is given).

    Returns
    -------
    tuple[list[GradeRule], GradeRule]
        The grades, best first, and the fallback (limits that always pass).

    Raises
    ------
    ForecastInputError
        When the file is unreadable or a limit is missing or not a number.
    """
    if path is None:
        text = (
            resources.files("forecasting.health").joinpath(RULES_RESOURCE).read_text()
        )
        where = f"forecasting/health/{RULES_RESOURCE}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"{path}: cannot read the second-life rules: {exc}"
            raise ForecastInputError(msg) from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{where}: TOML syntax error: {exc}"
        raise ForecastInputError(msg) from None
    grades = data.get("grade")
    if not isinstance(grades, list) or not grades:
        msg = f"{where}: needs at least one [[grade]] table"
        raise ForecastInputError(msg)
    rules = [_rule(g, f"{where}: grade[{i}]") for i, g in enumerate(grades)]
    fallback_data = data.get("fallback", {"name": "R", "applications": ["recycling"]})
    fallback = GradeRule(
        name=str(fallback_data.get("name", "R")),
        min_soh=0.0,
        max_fade_per_year=math.inf,
        max_spread_mv=math.inf,
        max_efc=math.inf,
        max_critical_alerts=1 << 30,
        applications=tuple(fallback_data.get("applications", ["recycling"])),
    )
    return rules, fallback


def _rule(data: dict[str, Any], where: str) -> GradeRule:
    for key in LIMIT_FIELDS:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"{where}.{key}={value!r} must be a number"
            raise ForecastInputError(msg)
    apps = data.get("applications")
    if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
        msg = f"{where}.applications must be a list of names"
        raise ForecastInputError(msg)
    return GradeRule(
        name=str(data.get("name", "?")),
        min_soh=float(data["min_soh"]),
        max_fade_per_year=float(data["max_fade_per_year"]),
        max_spread_mv=float(data["max_spread_mv"]),
        max_efc=float(data["max_efc"]),
        max_critical_alerts=int(data["max_critical_alerts"]),
        applications=tuple(apps),
    )


def grade_unit(
    *,
    soh: float,
    fade_per_year: float | None,
    spread_mv: float | None,
    efc: float,
    critical_alerts: int = 0,
    rules: tuple[list[GradeRule], GradeRule] | None = None,
) -> Grade:
    """Grade one unit: the first grade whose every limit it meets.

    Parameters
    ----------
    soh : float
        State of health now (fraction 0-1).
    fade_per_year : float or None
        Fade trend (fraction of nameplate lost per year, positive = losing); None
        when the history is too short to fit one (the fade limit is then not
        judged).
    spread_mv : float or None
        Latest mid-SoC cell-voltage spread [mV]; None when unknown (not judged).
    efc : float
        Equivalent full cycles so far.
    critical_alerts : int, default 0
        Critical alerts in its history.
    rules : optional
        Rules from :func:`load_rules`; the packaged ones by default.

    Returns
    -------
    Grade
        The grade, its applications and why better grades were missed.

    Raises
    ------
    ForecastInputError
        When ``soh`` is not in [0, 1] or ``efc`` is negative.
    """
    if not 0.0 <= soh <= 1.0:
        msg = f"soh={soh!r} must be a fraction in [0, 1]"
        raise ForecastInputError(msg)
    if efc < 0:
        msg = f"efc={efc!r} must be >= 0"
        raise ForecastInputError(msg)
    grades, fallback = rules if rules is not None else load_rules()
    reasons: list[str] = []
    for rule in grades:
        missed = []
        if soh < rule.min_soh:
            missed.append(f"soh {soh:.3f} < {rule.min_soh:.3f}")
        if fade_per_year is not None and fade_per_year > rule.max_fade_per_year:
            missed.append(
                f"fade {fade_per_year:.4f}/yr > {rule.max_fade_per_year:.4f}/yr"
            )
        if spread_mv is not None and spread_mv > rule.max_spread_mv:
            missed.append(f"spread {spread_mv:.1f} mV > {rule.max_spread_mv:.1f} mV")
        if efc > rule.max_efc:
            missed.append(f"efc {efc:.0f} > {rule.max_efc:.0f}")
        if critical_alerts > rule.max_critical_alerts:
            missed.append(
                f"critical alerts {critical_alerts} > {rule.max_critical_alerts}"
            )
        if not missed:
            return Grade(rule.name, rule.applications, tuple(reasons))
        reasons.append(f"not {rule.name}: {'; '.join(missed)}")
    return Grade(fallback.name, fallback.applications, tuple(reasons))
