"""Choose the degradation segment costs dispatch uses for a site, and say where they came from.

By default every site's ``degradation_usd_per_mwh`` comes from the aging model
(:func:`forecasting.degradation.costs.degradation_costs`) at the site's own replacement
cost, SoC band, efficiency and expected duty: the equivalent full cycles a day of its
stored telemetry over the last 30 days when there are at least 7 days of it
(:func:`scenario_degradation`, what the day-ahead run passes to the scenario builder),
else what its warranty allows (throughput over years). A ``degradation_usd_per_mwh`` in
the fleet file is an explicit override: it is used as given, and :class:`SegmentCosts`
says so (the CLI's ``degradation costs`` and ``dayahead run`` print it).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from forecasting.degradation.costs import (
    CostInputs,
    DegradationCosts,
    degradation_costs,
)
from forecasting.degradation.cycles import cycle_ledger

if TYPE_CHECKING:
    from fleet.domain import Fleet, Site
    from fleet.store.dml import Bind

logger = logging.getLogger(__name__)

DAYS_PER_YEAR = 365.0
DEFAULT_TEMP_C = 25.0
"""Cell temperature assumed when none is known [°C]."""
EFC_PER_DAY_RANGE = (0.1, 3.0)
"""The warranty's EFC a day is clipped into this range for the expected duty [-]."""

DutySource = Literal["warranty", "history", "given"]
CostSource = Literal["model", "fleet file"]


@dataclass(frozen=True, slots=True)
class SegmentCosts:
    """The degradation costs dispatch uses for one site, and their provenance."""

    site_id: str
    """Site id."""
    usd_per_mwh: tuple[float, ...]
    """The scenario's ``degradation_usd_per_mwh``, shallow to deep [$/MWh]."""
    source: CostSource
    """``"model"`` or ``"fleet file"`` (an explicit override)."""
    model_usd_per_mwh: tuple[float, ...]
    """What the model gives for the same site and duty [$/MWh] (equal when source is
    the model)."""
    efc_per_day: float
    """Expected equivalent full cycles a day the model was evaluated at [-]."""
    duty_source: DutySource
    """Where ``efc_per_day`` came from: the warranty, the telemetry history or given."""
    temp_c: float
    """Cell temperature the model was evaluated at [°C]."""
    costs: DegradationCosts
    """The model's full answer (calendar cost, life, EFC to end of life, warnings)."""

    @property
    def description(self) -> str:
        """One line saying what dispatch uses and where it came from."""
        duty = f"{self.efc_per_day:.3g} EFC/day from the {self.duty_source}"
        if self.duty_source == "given":
            duty = f"{self.efc_per_day:.3g} EFC/day (given)"
        if self.source == "fleet file":
            model = ", ".join(f"{v:.2f}" for v in self.model_usd_per_mwh)
            return (
                "fleet-file override degradation_usd_per_mwh (the model would give "
                f"[{model}] at {duty}, {self.temp_c:g} °C)"
            )
        return f"model ({duty}, {self.temp_c:g} °C)"


def warranty_efc_per_day(site: Site) -> float:
    """Equivalent full cycles a day the site's warranty allows [-]."""
    battery = site.battery
    return battery.warranty.throughput_mwh / (
        battery.energy_mwh * battery.warranty.years * DAYS_PER_YEAR
    )


def site_cost_inputs(
    site: Site,
    *,
    efc_per_day: float | None = None,
    temp_c: float = DEFAULT_TEMP_C,
) -> CostInputs:
    """Cost inputs of a fleet site; the expected duty from its warranty when not given.

    Parameters
    ----------
    site
        The site (battery energy, band, efficiency, replacement cost, warranty).
    efc_per_day
        Expected equivalent full cycles a day (> 0); None: the warranty's, clipped to
        :data:`EFC_PER_DAY_RANGE`.
    temp_c
        Expected mean cell temperature [°C].

    Returns
    -------
    CostInputs
    """
    battery = site.battery
    if efc_per_day is None:
        lo, hi = EFC_PER_DAY_RANGE
        efc_per_day = min(max(warranty_efc_per_day(site), lo), hi)
    return CostInputs(
        energy_mwh=battery.energy_mwh,
        replacement_cost_usd_per_kwh=battery.replacement_cost_usd_per_kwh,
        soc_min=battery.soc_min,
        soc_max=battery.soc_max,
        eta_discharge=battery.eta_discharge,
        efc_per_day=efc_per_day,
        temp_c=temp_c,
        rest_soc=0.5 * (battery.soc_min + battery.soc_max),
    )


@lru_cache(maxsize=4096)
def _model_costs(inputs: CostInputs, n_segments: int) -> DegradationCosts:
    """Memoized model costs: a 1,000-site fleet shares a handful of battery designs."""
    return degradation_costs(inputs, n_segments)


def site_segment_costs(
    site: Site,
    *,
    n_segments: int = 4,
    efc_per_day: float | None = None,
    history_efc_per_day: float | None = None,
    temp_c: float = DEFAULT_TEMP_C,
) -> SegmentCosts:
    """Return the segment costs dispatch uses for ``site`` and where they came from.

    Parameters
    ----------
    site
        The fleet site.
    n_segments
        K, the number of depth segments of the model curve (an override keeps its own).
    efc_per_day
        A given expected duty [EFC/day] (what-if); wins over history and warranty.
    history_efc_per_day
        The duty measured on the site's telemetry [EFC/day]; wins over the warranty.
    temp_c
        Expected mean cell temperature [°C].

    Returns
    -------
    SegmentCosts
        The override when the fleet file sets ``degradation_usd_per_mwh``, else the
        model's curve.

    Raises
    ------
    forecasting.errors.ForecastInputError
        When a given duty or temperature is out of range (the field is named).
    """
    duty: DutySource = "warranty"
    chosen = None
    if efc_per_day is not None:
        chosen, duty = efc_per_day, "given"
    elif history_efc_per_day is not None and history_efc_per_day > 0:
        lo, hi = EFC_PER_DAY_RANGE
        chosen, duty = min(max(history_efc_per_day, lo), hi), "history"
    inputs = site_cost_inputs(site, efc_per_day=chosen, temp_c=temp_c)
    inputs.validate()
    model = _model_costs(inputs, n_segments)
    override = site.degradation_usd_per_mwh
    if override is not None:
        return SegmentCosts(
            site_id=str(site.id),
            usd_per_mwh=tuple(float(v) for v in override),
            source="fleet file",
            model_usd_per_mwh=model.segment_usd_per_mwh,
            efc_per_day=inputs.efc_per_day,
            duty_source=duty,
            temp_c=temp_c,
            costs=model,
        )
    return SegmentCosts(
        site_id=str(site.id),
        usd_per_mwh=model.segment_usd_per_mwh,
        source="model",
        model_usd_per_mwh=model.segment_usd_per_mwh,
        efc_per_day=inputs.efc_per_day,
        duty_source=duty,
        temp_c=temp_c,
        costs=model,
    )


def model_segment_costs_usd_per_mwh(site: Site, n_segments: int = 4) -> list[float]:
    """Return the model's segment costs of a site at its warranty duty [$/MWh].

    This is what a scenario gets for a site whose fleet file sets no override.
    """
    inputs = site_cost_inputs(site)
    return list(_model_costs(inputs, n_segments).segment_usd_per_mwh)


def fleet_overrides(fleet: Fleet) -> dict[str, tuple[float, ...]]:
    """Sites whose fleet file sets ``degradation_usd_per_mwh``, with the value [$/MWh]."""
    return {
        str(site.id): tuple(site.degradation_usd_per_mwh)
        for site in fleet.sites
        if site.degradation_usd_per_mwh is not None
    }


def describe_fleet_costs(
    fleet: Fleet,
    site_ids: set[str] | None = None,
    used: dict[str, list[float]] | None = None,
) -> str:
    """One sentence for a plan: which sites use the model (at which duty), which an override.

    ``used`` (per site id, the curve a scenario carries) tells a history duty from
    the warranty one: a curve that is not the warranty curve came from the history.
    """
    sites = [s for s in fleet.sites if site_ids is None or str(s.id) in site_ids]
    overrides = [str(s.id) for s in sites if s.degradation_usd_per_mwh is not None]
    history = [
        str(s.id)
        for s in sites
        if s.degradation_usd_per_mwh is None
        and used is not None
        and str(s.id) in used
        and not np.allclose(
            used[str(s.id)], model_segment_costs_usd_per_mwh(s, len(used[str(s.id)]))
        )
    ]
    n_warranty = len(sites) - len(overrides) - len(history)
    text = f"degradation costs: model at warranty duty for {n_warranty} site(s)"
    if history:
        text += f"; model at the duty of the last 30 days for {', '.join(history)}"
    if overrides:
        text += f"; fleet-file override for {', '.join(overrides)}"
    return text


HISTORY_DAYS = 30
"""Telemetry window the expected duty is measured on [day]."""
MIN_HISTORY_DAYS = 7.0
"""Shorter histories say too little about the duty: the warranty's is used [day]."""


def history_efc_per_day(
    bind: Bind,
    site: Site,
    *,
    now: dt.datetime,
    days: int = HISTORY_DAYS,
) -> float | None:
    """Equivalent full cycles a day of a site's stored telemetry over the last ``days``.

    Per battery device, throughput is metered where every sample has DC power: summed
    in the database (Σ discharge power and Σ charge power times the mean sample
    interval), so 30 days of 1-s samples return one row per device. A device with
    samples lacking power is counted on its SoC with the auto band
    (:func:`forecasting.degradation.cycles.cycle_ledger`). Devices share the site's
    energy: metered throughput adds up against it; SoC-counted EFC are averaged.

    Returns
    -------
    float or None
        EFC a day, or None with less than :data:`MIN_HISTORY_DAYS` of samples.
    """
    import sqlalchemy as sa

    from fleet.health import read_telemetry
    from fleet.store.dml import transaction
    from fleet.store.telemetry_tables import tlm_measurements as m

    since = now - dt.timedelta(days=days)
    window = (
        m.c.site_id == str(site.id),
        m.c.ts_ms >= int(since.timestamp() * 1000),
        m.c.ts_ms < int(now.timestamp() * 1000),
        m.c.soc_pct.is_not(None),
    )
    query = (
        sa.select(
            m.c.dev_id,
            sa.func.count().label("n"),
            sa.func.count(m.c.p_dc_w).label("n_power"),
            sa.func.min(m.c.ts_ms).label("first_ms"),
            sa.func.max(m.c.ts_ms).label("last_ms"),
            sa.func.sum(sa.case((m.c.p_dc_w > 0, m.c.p_dc_w), else_=0.0)).label("dis"),
            sa.func.sum(sa.case((m.c.p_dc_w < 0, -m.c.p_dc_w), else_=0.0)).label("chg"),
        )
        .where(*window)
        .group_by(m.c.dev_id)
        .order_by(m.c.dev_id)
    )
    with transaction(bind) as conn:
        devices = conn.execute(query).all()
    devices = [d for d in devices if d.n >= 2]
    if not devices:
        return None
    span_days = (
        float(max(d.last_ms for d in devices) - min(d.first_ms for d in devices))
        / 86_400_000.0
    )
    if span_days < MIN_HISTORY_DAYS:
        return None
    energy = site.battery.energy_mwh
    metered_mwh = 0.0
    soc_efc: list[float] = []
    for dev in devices:
        if dev.n_power == dev.n:
            mean_dt_h = float(dev.last_ms - dev.first_ms) / (dev.n - 1) / 3.6e6
            metered_mwh += (float(dev.dis) + float(dev.chg)) / 1e6 * mean_dt_h
            continue
        frame = read_telemetry(
            bind, site_id=str(site.id), dev_id=dev.dev_id, since=since, until=now
        )
        soc = np.clip(frame["soc_pct"].dropna().to_numpy(float) / 100.0, 0.0, 1.0)
        soc_efc.append(cycle_ledger(soc, energy, band="auto").efc)
    # A device without power is rare (a BMS-only gateway); its SoC count then stands
    # for the site, as the metered share cannot be split by device capacity here.
    efc = float(np.mean(soc_efc)) if soc_efc else metered_mwh / (2.0 * energy)
    return efc / span_days


def scenario_degradation(
    bind: Bind, sites: list[Site], *, now: dt.datetime
) -> dict[str, list[float]]:
    """Model segment costs per site at the duty of its stored history [$/MWh].

    What ``build_scenario(degradation=…)`` takes: sites without enough history are
    left out (the scenario builder then uses the warranty duty), and sites with a
    fleet-file override keep it (the builder uses the override first).
    """
    out: dict[str, list[float]] = {}
    for site in sites:
        if site.degradation_usd_per_mwh is not None:
            continue
        efc = history_efc_per_day(bind, site, now=now)
        if efc is None:
            continue
        chosen = site_segment_costs(site, history_efc_per_day=efc)
        logger.info("site %s: %s", site.id, chosen.description)
        out[str(site.id)] = list(chosen.usd_per_mwh)
    return out
