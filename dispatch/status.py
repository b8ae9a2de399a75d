"""Solver outcomes as data: the status enum and the solve report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SolveStatus(StrEnum):
    """Outcome of a dispatch solve (spec/dispatch-model.md, result ``status``)."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SolveReport:
    """How a solve went.

    Attributes
    ----------
    seconds : float
        Wall-clock time of the whole solve, build included [s].
    mip_gap : float
        Relative gap between the returned objective and the best bound (0 when proven).
    solver : str
        Solver name and version.
    path : str
        Solution path: ``"lp"``, ``"lp+milp(k binaries, r rounds)"``, ``"milp"``, or
        ``"decomposed(...)"`` around those.
    """

    seconds: float
    mip_gap: float
    solver: str
    path: str
