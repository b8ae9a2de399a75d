"""Reserve awards a schedule does not hold (the shortfall of soft commitments)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dispatch.result import Result
from dispatch.scenario import Scenario


def reserve_shortfall_mw(
    scn: Scenario, result: Result
) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
    """Return, per site and product, the awarded MW the schedule does not hold.

    Parameters
    ----------
    scn
        The scenario (its sites' ``commitments`` are the awards).
    result
        A result with a schedule.

    Returns
    -------
    dict
        ``{site_id: {product: max(0, award - scheduled) per interval [MW]}}`` for the
        sites and products with an award; empty when everything is held.
    """
    out: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
    for site in scn.sites:
        com = site.commitments
        sched = result.sites.get(site.id)
        if com is None:
            continue
        for product, award in com.reserves_mw.items():
            held = (
                np.zeros(scn.intervals)
                if sched is None
                else np.asarray(sched.reserve(product), dtype=float)
            )
            short = np.maximum(0.0, np.asarray(award, dtype=float) - held)
            short[short < 1e-6] = 0.0
            if short.any():
                out.setdefault(site.id, {})[product] = short
    return out
