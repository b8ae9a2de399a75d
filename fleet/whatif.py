"""Sourcing what-if: compare component mixes of a planned project against the FEOC rule.

A what-if file (TOML) names the year construction begins and one or more scenarios:
a sourcing mix (provenance components with cost shares), its capex and the investment
tax credit (ITC) rate it would earn before the credit's phase-down (the fraction of
the credit left for the construction year, from ``fleet/data/feoc_thresholds.toml``;
a scenario may set its own ``year``). A scenario whose ``site`` is a fleet site is an
augmentation or re-sourcing of that site, any other ``site`` a new site; both are
checked with :func:`fleet.compliance.site_compliance` in the scenario's construction
year. For each scenario the planner sees the cost ratio against the year's
threshold, whether the ITC still applies, its value after the phase-down and the
credit at risk::

    year = 2027
    itc_rate = 0.30

    [[scenario]]
    name = "60% non-FEOC"
    site = "tx-new-01"
    capex_usd = 10_000_000
    [[scenario.component]]
    component = "cell"
    manufacturer = "Cell Co"
    country_of_manufacture = "CN"
    feoc = true
    cost_share = 0.4
    # … more components, cost shares summing to 1
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from fleet.compliance import load_thresholds, site_compliance
from fleet.domain import COST_SHARE_TOLERANCE, Component
from fleet.errors import FleetInputError
from fleet.types import SiteId

if TYPE_CHECKING:
    from fleet.compliance import ThresholdTable
    from fleet.domain import Fleet

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class WhatIfScenario(BaseModel):
    """One sourcing mix for a planned project."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    site: str = Field(min_length=1, max_length=64)
    capex_usd: float = Field(gt=0.0)
    itc_rate: Fraction | None = None
    year: int | None = Field(default=None, ge=1900, le=2200)
    component: list[Component] = Field(min_length=1)

    @pydantic.model_validator(mode="after")
    def _shares_sum_to_one(self) -> WhatIfScenario:
        total = math.fsum(c.cost_share for c in self.component)
        if abs(total - 1.0) > COST_SHARE_TOLERANCE:
            msg = f"component cost_share values sum to {total:.6g}, expected 1"
            raise ValueError(msg)
        return self


class WhatIfFile(BaseModel):
    """A what-if file: the year and the scenarios to compare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    year: int = Field(ge=1900, le=2200)
    itc_rate: Fraction = 0.30
    scenario: list[WhatIfScenario] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    """The outcome of one scenario."""

    name: str
    """Scenario name."""
    site: str
    """Site id (existing or planned)."""
    new_site: bool
    """True when the site is not in the fleet."""
    capex_usd: float
    """Capex of the project [USD]."""
    non_feoc_share: float
    """Fraction (0-1) of capex from non-FEOC parts."""
    year: int
    """Year construction begins (threshold and phase-down)."""
    threshold: float
    """Required fraction (0-1) for the year."""
    margin: float
    """``non_feoc_share - threshold`` (fraction)."""
    passes: bool
    """Whether the mix reaches the threshold (ITC applies)."""
    itc_rate: float
    """ITC rate before the phase-down (fraction 0-1 of capex)."""
    phase_down: float
    """Fraction (0-1) of the credit left for the year (the phase-down schedule)."""
    itc_value_usd: float
    """Credit earned: ``capex_usd · itc_rate · phase_down`` when passing, else 0
    [USD]."""
    credit_at_risk_usd: float
    """Credit lost by failing: ``capex_usd · itc_rate · phase_down`` when failing,
    else 0 [USD]."""
    net_capex_usd: float
    """``capex_usd - itc_value_usd`` [USD]."""


def load_whatif(path: Path) -> WhatIfFile:
    """Read and validate a what-if file.

    Raises
    ------
    FleetInputError
        When the file is unreadable, not TOML, or a field is invalid (each problem
        names the scenario and the field).
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"{path}: cannot read the what-if file: {exc}"
        raise FleetInputError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: TOML syntax error: {exc}"
        raise FleetInputError(msg) from None
    try:
        return WhatIfFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise FleetInputError(_problems(path, data, exc)) from None


def _problems(path: Path, data: dict[str, Any], exc: pydantic.ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "scenario" and isinstance(loc[1], int):
            scenarios = data.get("scenario", [])
            name = scenarios[loc[1]].get("name") if loc[1] < len(scenarios) else None
            where = f"scenario {name or loc[1]!r}: " + ".".join(str(p) for p in loc[2:])
        text = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {where}: {text}")
    return "\n".join(lines)


def compare_sourcing(
    fleet: Fleet, whatif: WhatIfFile, *, table: ThresholdTable | None = None
) -> list[WhatIfRow]:
    """Evaluate every scenario of a what-if against the year's FEOC threshold.

    Parameters
    ----------
    fleet
        The fleet (scenarios naming one of its sites re-source that site).
    whatif
        The scenarios.
    table
        Threshold table; the packaged one by default.

    Returns
    -------
    list[WhatIfRow]
        One row per scenario, in file order.

    Raises
    ------
    FleetInputError
        When the year is outside the threshold table.
    """
    table = table if table is not None else load_thresholds()
    known = set(fleet.site_ids)
    rows: list[WhatIfRow] = []
    for scenario in whatif.scenario:
        site = SiteId(scenario.site)
        year = scenario.year if scenario.year is not None else whatif.year
        # A re-sourcing or augmentation of a fleet site begins its construction in
        # the scenario's year too: that year's threshold and credit apply.
        result = site_compliance(site, scenario.component, year, table)
        rate = scenario.itc_rate if scenario.itc_rate is not None else whatif.itc_rate
        phase = table.credit_fraction(year)
        credit = scenario.capex_usd * rate * phase
        earned = credit if result.passes else 0.0
        rows.append(
            WhatIfRow(
                name=scenario.name,
                site=scenario.site,
                new_site=site not in known,
                capex_usd=scenario.capex_usd,
                non_feoc_share=result.non_feoc_share,
                year=year,
                threshold=result.threshold,
                margin=result.margin,
                passes=result.passes,
                itc_rate=rate,
                phase_down=phase,
                itc_value_usd=earned,
                credit_at_risk_usd=credit - earned,
                net_capex_usd=scenario.capex_usd - earned,
            )
        )
    return rows
