"""Check each site's non-FEOC capex share against the year's threshold.

The thresholds live in one data file, ``fleet/data/feoc_thresholds.toml`` (the project's
reading of the OBBBA "material assistance" cost ratio for energy storage). Everything
here is a pure function of the fleet, the year and the table: a what-if over other
sourcing mixes (issue 11) passes its alternative components through ``provenance``
and compares the reports.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    """One site's FEOC compliance for a year."""

    site: SiteId
    """Site id."""
    year: int
    """Year construction begins (the year whose threshold applies)."""
    non_feoc_share: float
    """Fraction (0-1) of the site's capex from parts not made by a FEOC."""
    threshold: float
    """Required non-FEOC fraction (0-1) for the year."""
    passes: bool
    """Whether ``non_feoc_share`` reaches ``threshold``."""
    margin: float
    """``non_feoc_share - threshold`` (fraction; negative when failing)."""
    feoc_components: tuple[str, ...]
    """Component kinds flagged FEOC (e.g. ``("cell", "module")``)."""


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
    )


def non_feoc_share(components: Sequence[Component]) -> float:
    """Return the fraction (0-1) of capex from components not flagged FEOC.

    Parameters
    ----------
    components
        Provenance entries whose ``cost_share`` values sum to 1.

    Returns
    -------
    float
        Sum of ``cost_share`` over the components with ``feoc`` false.
    """
    return math.fsum(c.cost_share for c in components if not c.feoc)


def site_compliance(
    site_id: SiteId,
    components: Sequence[Component],
    year: int,
    table: ThresholdTable,
) -> SiteCompliance:
    """Check one sourcing mix against the year's threshold.

    Parameters
    ----------
    site_id
        The site the mix belongs to.
    components
        Its provenance entries (cost shares summing to 1).
    year
        Year construction begins.
    table
        The threshold table.

    Raises
    ------
    FleetInputError
        When ``year`` is outside the table.
    """
    threshold = table.threshold(year)
    share = non_feoc_share(components)
    margin = share - threshold
    return SiteCompliance(
        site=site_id,
        year=year,
        non_feoc_share=share,
        threshold=threshold,
        passes=margin >= -SHARE_TOLERANCE,
        margin=margin,
        feoc_components=tuple(
            dict.fromkeys(c.component.value for c in components if c.feoc)
        ),
    )


def compliance_report(
    fleet: Fleet,
    year: int,
    *,
    table: ThresholdTable | None = None,
    provenance: Mapping[str, Sequence[Component]] | None = None,
) -> list[SiteCompliance]:
    """Check every site's non-FEOC capex share against ``year``'s threshold.

    Parameters
    ----------
    fleet
        The fleet.
    year
        Year construction begins (the threshold of that year applies to all sites).
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
        When ``year`` is outside the table, or ``provenance`` names an unknown site.
    """
    table = table if table is not None else load_thresholds()
    overrides = dict(provenance or {})
    unknown = sorted(set(overrides) - set(fleet.site_ids))
    if unknown:
        msg = (
            f"provenance names sites not in fleet {fleet.name!r}: {', '.join(unknown)}"
        )
        raise FleetInputError(msg)
    return [
        site_compliance(site.id, overrides.get(site.id, site.provenance), year, table)
        for site in fleet.sites
    ]
