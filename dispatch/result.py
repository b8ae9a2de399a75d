"""The dispatch result: schedule, value and solve report (spec result format 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dispatch.errors import DispatchInputError
from dispatch.status import SolveReport, SolveStatus

RESULT_SCHEMA: Final = "bess-dispatch-result/1"
REVENUE_KEYS = (
    "energy",
    "reg_up",
    "reg_down",
    "spin",
    "capacity",
    "degradation",
    "btm_energy",
    "demand_charge",
    "reserve_shortfall",
)


class SolveInfo(BaseModel):
    """The ``solve`` block of a result (seconds [s], relative MIP gap, solver, path)."""

    model_config = ConfigDict(extra="forbid")

    seconds: float
    mip_gap: float
    solver: str
    path: str = ""

    @classmethod
    def from_report(cls, report: SolveReport) -> SolveInfo:
        """Build from the internal :class:`SolveReport`."""
        return cls(
            seconds=report.seconds,
            mip_gap=report.mip_gap,
            solver=report.solver,
            path=report.path,
        )


class SiteSchedule(BaseModel):
    """Schedule of one site.

    Attributes
    ----------
    charge_mw, discharge_mw, reg_up_mw, reg_down_mw, spin_mw : list of float
        Decision series, T values [MW].
    capacity_mw : float
        Capacity commitment [MW].
    soc : list of float
        Stored energy at the start of each interval plus the end, T+1 values (fraction of E).
    grid_import_mw : list of float or None
        Meter import g_i, behind-the-meter sites only [MW].
    energy_value_usd_per_mwh : list of float
        Marginal value of stored energy per interval: dual of the aggregate energy balance
        e_{i+1} = e_i + … (extension) [$/MWh].
    throughput_shadow_usd_per_mwh : float or None
        Shadow price of the throughput budget, when one is set (extension) [$/MWh].
    revenue_usd : dict or None
        The site's share of the result's ``revenue_usd`` (extension) [$].
    """

    model_config = ConfigDict(extra="forbid")

    charge_mw: list[float]
    discharge_mw: list[float]
    reg_up_mw: list[float]
    reg_down_mw: list[float]
    spin_mw: list[float]
    capacity_mw: float
    soc: list[float]
    grid_import_mw: list[float] | None = None
    energy_value_usd_per_mwh: list[float] | None = None
    throughput_shadow_usd_per_mwh: float | None = None
    revenue_usd: dict[str, float] | None = None


class Result(BaseModel):
    """A dispatch result in the spec's JSON format (extra keys are extensions)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["bess-dispatch-result/1"] = Field(RESULT_SCHEMA, alias="schema")
    status: SolveStatus
    reason: str | None = None
    objective_usd: float | None = None
    revenue_usd: dict[str, float] = Field(default_factory=dict)
    solve: SolveInfo
    sites: dict[str, SiteSchedule] = Field(default_factory=dict)

    def to_json_dict(self) -> dict[str, object]:
        """Return the result as the spec's JSON object."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def write(self, path: str | Path) -> None:
        """Write the result as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_json_dict(), indent=1) + "\n")


def load_result(path: str | Path) -> Result:
    """Read a result JSON file.

    Raises
    ------
    DispatchInputError
        For a missing file, invalid JSON or a result that breaks the format.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        msg = f"{path}: result file not found"
        raise DispatchInputError(msg) from None
    except json.JSONDecodeError as exc:
        msg = (
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        )
        raise DispatchInputError(msg) from None
    try:
        return Result.model_validate(data)
    except ValidationError as exc:
        msg = f"{path}: not a dispatch result: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        raise DispatchInputError(msg) from None
