"""Check each site's material assistance cost ratio against its year's threshold.

The law's ratio is ``(total direct cost - cost attributable to prohibited foreign
entities) / total direct cost``; a part of unknown origin or FEOC status counts as
prohibited (nothing shows it is not). The threshold is the one of the year the site's
construction began (``construction_start`` in the fleet file). The thresholds, the
credit's phase-down schedule and the covered nations live in one data file,
``fleet/data/feoc_thresholds.toml`` (the project's reading of the OBBBA). Everything
here is a pure function of the fleet, the years and the table: a what-if over other
sourcing mixes passes its alternative components through ``provenance`` and compares
the reports.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.errors import FleetInputError

if TYPE_CHECKING:
    from fleet.domain import Component, Fleet
    from fleet.types import SiteId

THRESHOLDS_RESOURCE = "feoc_thresholds.toml"
"""File name of the threshold table inside ``fleet/data``."""

SHARE_TOLERANCE = 1e-9
"""A share this close below the threshold still passes (float rounding of sums)."""


@dataclass(frozen=True, slots=True)
class ThresholdTable:
    """Minimum non-FEOC capex share by the year construction begins."""

    thresholds: Mapping[int, float]
    """Threshold (fraction 0-1) from each listed year on."""
    min_year: int
    """First year the table may be asked about."""
    max_year: int
    """Last year the table may be asked about."""
    source: str
    """What the table is a reading of."""
    note: str
    """A one-line summary of the table."""
    credit_phase_down: Mapping[int, float] = dataclass_field(default_factory=dict)
    """Fraction (0-1) of the credit left for construction beginning from each listed
    year on (years before the first listed keep the full credit)."""
    covered_nations: frozenset[str] = frozenset()
    """ISO codes of the foreign countries of concern: a part made there but not
    flagged FEOC is worth a review."""

    def credit_fraction(self, year: int) -> float:
        """Return the fraction (0-1) of the credit left for construction in ``year``."""
        listed = [y for y in sorted(self.credit_phase_down) if y <= year]
        return self.credit_phase_down[listed[-1]] if listed else 1.0

    def threshold(self, year: int) -> float:
        """Return the threshold (fraction 0-1) for construction beginning in ``year``.

        Years before the first listed year have no requirement (0); years after the
        last listed year keep the last threshold.

        Raises
        ------
        FleetInputError
            When ``year`` is outside [min_year, max_year].
        """
        if not self.min_year <= year <= self.max_year:
            msg = (
                f"year={year} is outside the FEOC threshold table "
                f"({self.min_year}-{self.max_year}, fleet/data/{THRESHOLDS_RESOURCE})"
            )
            raise FleetInputError(msg)
        listed = [y for y in sorted(self.thresholds) if y <= year]
        return self.thresholds[listed[-1]] if listed else 0.0


@dataclass(frozen=True, slots=True)
class SiteCompliance:
    """One site's FEOC compliance for the year its construction began."""

    site: SiteId
    """Site id."""
    year: int
    """Year construction began (the year whose threshold applies)."""
    non_feoc_share: float
    """The material assistance cost ratio (0-1): (total - prohibited) / total, with
    parts of unknown origin counted as prohibited."""
    threshold: float
    """Required non-FEOC fraction (0-1) for the year."""
    passes: bool
    """Whether ``non_feoc_share`` reaches ``threshold``."""
    margin: float
    """``non_feoc_share - threshold`` (fraction; negative when failing)."""
    feoc_components: tuple[str, ...]
    """Component kinds flagged FEOC (e.g. ``("cell", "module")``)."""
    unknown_share: float = 0.0
    """Fraction (0-1) of the cost whose origin or FEOC status is unknown (counted as
    prohibited: a compliance risk)."""
    year_source: str = "construction_start"
    """Where ``year`` came from: ``construction_start`` or ``default`` (``--year``)."""
    warnings: tuple[str, ...] = ()
    """Things to review (parts made in a covered nation but not flagged FEOC, parts
    of unknown origin)."""


def load_thresholds(path: Path | None = None) -> ThresholdTable:
    """Read the FEOC threshold table (the packaged one unless ``path`` is given).

    Raises
    ------
    FleetInputError
        When the file is missing, malformed, or a threshold is not a fraction.
    """
    if path is None:
        text = resources.files("fleet.data").joinpath(THRESHOLDS_RESOURCE).read_text()
        where = f"fleet/data/{THRESHOLDS_RESOURCE}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"{path}: cannot read the FEOC threshold table: {exc}"
            raise FleetInputError(msg) from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{where}: TOML syntax error: {exc}"
        raise FleetInputError(msg) from None
    return _table_from_data(data, where)


def _table_from_data(data: dict[str, Any], where: str) -> ThresholdTable:
    problems: list[str] = []
    raw = data.get("thresholds")
    thresholds: dict[int, float] = {}
    if not isinstance(raw, dict) or not raw:
        problems.append("thresholds must be a non-empty table of year = fraction")
        raw = {}
    for key, value in raw.items():
        if not str(key).isdigit():
            problems.append(f"thresholds.{key} must be a year")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"thresholds.{key}={value!r} must be a number")
        elif not 0.0 <= value <= 1.0:
            problems.append(f"thresholds.{key}={value} must be within [0, 1]")
        else:
            thresholds[int(key)] = float(value)
    phase_down: dict[int, float] = {}
    raw_phase = data.get("credit_phase_down", {})
    if not isinstance(raw_phase, dict):
        problems.append("credit_phase_down must be a table of year = fraction")
        raw_phase = {}
    for key, value in raw_phase.items():
        if not str(key).isdigit():
            problems.append(f"credit_phase_down.{key} must be a year")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"credit_phase_down.{key}={value!r} must be a number")
        elif not 0.0 <= value <= 1.0:
            problems.append(f"credit_phase_down.{key}={value} must be within [0, 1]")
        else:
            phase_down[int(key)] = float(value)
    nations = data.get("covered_nations", [])
    if not isinstance(nations, list) or not all(
        isinstance(n, str) and len(n) == 2 for n in nations
    ):
        problems.append("covered_nations must be a list of two-letter country codes")
        nations = []
    ordered = [thresholds[y] for y in sorted(thresholds)]
    if any(b < a for a, b in itertools.pairwise(ordered)):
        problems.append(f"thresholds={thresholds} must not decrease from year to year")
    years: dict[str, int] = {}
    for key in ("min_year", "max_year"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{key}={value!r} must be a year")
        else:
            years[key] = value
    for key in ("source", "note"):
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key} must be a non-empty text")
    if problems:
        raise FleetInputError("\n".join(f"{where}: {p}" for p in problems))
    return ThresholdTable(
        thresholds=thresholds,
        min_year=years["min_year"],
        max_year=years["max_year"],
        source=str(data["source"]),
        note=str(data["note"]),
        credit_phase_down=phase_down,
        covered_nations=frozenset(nations),
    )


def non_feoc_share(components: Sequence[Component]) -> float:
    """Return the material assistance cost ratio (0-1) of a sourcing mix.

    Parameters
    ----------
    components
        Provenance entries with their ``cost_share`` of the direct cost.

    Returns
    -------
    float
        ``(total - prohibited) / total`` with ``total`` the sum of every cost share
        and ``prohibited`` that of the parts flagged FEOC or of unknown origin (the
        law's ratio: shares that do not sum exactly to 1 are not rounded in the
        mix's favour).
    """
    total = math.fsum(c.cost_share for c in components)
    if total <= 0:
        return 0.0
    prohibited = math.fsum(c.cost_share for c in components if _counts_against(c))
    return (total - prohibited) / total


def _counts_against(component: Component) -> bool:
    return component.feoc is True or component.unknown_origin


def site_compliance(
    site_id: SiteId,
    components: Sequence[Component],
    year: int,
    table: ThresholdTable,
    *,
    year_source: str = "construction_start",
) -> SiteCompliance:
    """Check one sourcing mix against the threshold of the year construction began.

    Parameters
    ----------
    site_id
        The site the mix belongs to.
    components
        Its provenance entries (cost shares of the direct cost).
    year
        Year construction began.
    table
        The threshold table.
    year_source
        Where ``year`` came from (reported as is).

    Raises
    ------
    FleetInputError
        When ``year`` is outside the table.
    """
    threshold = table.threshold(year)
    share = non_feoc_share(components)
    margin = share - threshold
    total = math.fsum(c.cost_share for c in components)
    unknown = math.fsum(c.cost_share for c in components if c.unknown_origin)
    warnings = [
        f"{c.component.value} by {c.manufacturer}: origin or FEOC status unknown, "
        "counted as prohibited"
        for c in components
        if c.unknown_origin
    ]
    warnings += [
        f"{c.component.value} by {c.manufacturer} is made in "
        f"{c.country_of_manufacture} (a covered nation) but flagged feoc=false: "
        "check the maker's ownership and control"
        for c in components
        if c.feoc is False and c.country_of_manufacture in table.covered_nations
    ]
    return SiteCompliance(
        site=site_id,
        year=year,
        non_feoc_share=share,
        threshold=threshold,
        passes=margin >= -SHARE_TOLERANCE,
        margin=margin,
        feoc_components=tuple(
            dict.fromkeys(c.component.value for c in components if c.feoc is True)
        ),
        unknown_share=unknown / total if total > 0 else 0.0,
        year_source=year_source,
        warnings=tuple(warnings),
    )


def compliance_report(
    fleet: Fleet,
    year: int | None = None,
    *,
    table: ThresholdTable | None = None,
    provenance: Mapping[str, Sequence[Component]] | None = None,
) -> list[SiteCompliance]:
    """Check every site's cost ratio against its construction year's threshold.

    Parameters
    ----------
    fleet
        The fleet.
    year
        Default year construction began, for sites without ``construction_start``
        (a site's own ``construction_start`` always wins).
    table
        Threshold table; the packaged ``fleet/data/feoc_thresholds.toml`` by default.
    provenance
        Alternative sourcing mixes by site id (for what-if comparisons); sites not
        in it use their own provenance.

    Returns
    -------
    list[SiteCompliance]
        One entry per site, in fleet order.

    Raises
    ------
    FleetInputError
        When a site has no ``construction_start`` and no default ``year`` is given,
        a year is outside the table, or ``provenance`` names an unknown site.
    """
    table = table if table is not None else load_thresholds()
    overrides = dict(provenance or {})
    unknown = sorted(set(overrides) - set(fleet.site_ids))
    if unknown:
        msg = (
            f"provenance names sites not in fleet {fleet.name!r}: {', '.join(unknown)}"
        )
        raise FleetInputError(msg)
    undated = [s.id for s in fleet.sites if s.construction_start is None]
    if undated and year is None:
        msg = (
            f"site(s) {', '.join(undated)} have no construction_start (the day "
            "construction began sets the FEOC threshold); add it to the fleet file "
            "or give a default year"
        )
        raise FleetInputError(msg)
    report = []
    for site in fleet.sites:
        if site.construction_start is not None:
            site_year, source = site.construction_start.year, "construction_start"
        else:
            site_year, source = int(year or 0), "default"
        report.append(
            site_compliance(
                site.id,
                overrides.get(site.id, site.provenance),
                site_year,
                table,
                year_source=source,
            )
        )
    return report
