"""The dispatch result: schedule, value and solve report (spec result format 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from dispatch.errors import DispatchInputError
from dispatch.scenario import LEGACY_RESERVE_KEYS, legacy_reserves
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
"""Revenue keys of every result; a scenario's extra ``products`` add one key each."""


def revenue_keys(products: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Return :data:`REVENUE_KEYS` plus the reserve ``products`` not among them."""
    return REVENUE_KEYS + tuple(p for p in products if p not in REVENUE_KEYS)


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
    charge_mw, discharge_mw : list of float
        Decision series, T values [MW].
    reserves_mw : dict
        Reserve product -> award series, T values [MW]. In JSON the spec's products
        are written as ``reg_up_mw``, ``reg_down_mw``, ``spin_mw`` and any other under
        ``reserves_mw`` (extension); :attr:`reg_up_mw` etc. read them back.
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
    reserves_mw: dict[str, list[float]] = Field(default_factory=dict)
    capacity_mw: float
    soc: list[float]
    grid_import_mw: list[float] | None = None
    energy_value_usd_per_mwh: list[float] | None = None
    throughput_shadow_usd_per_mwh: float | None = None
    revenue_usd: dict[str, float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return legacy_reserves(data, "reserves_mw")

    @model_serializer(mode="wrap")
    def _spec_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        reserves = dict(out.pop("reserves_mw", None) or {})
        spec = {key: reserves.pop(p, None) for key, p in LEGACY_RESERVE_KEYS.items()}
        head: dict[str, Any] = {
            k: out.pop(k) for k in ("charge_mw", "discharge_mw") if k in out
        }
        zeros = [0.0] * len(self.charge_mw)
        head.update({k: zeros if v is None else v for k, v in spec.items()})
        if reserves:
            head["reserves_mw"] = reserves
        return head | out

    def reserve(self, product: str) -> list[float]:
        """Award series of ``product`` [MW] (zeros when the schedule has none)."""
        series = self.reserves_mw.get(product)
        return [0.0] * len(self.charge_mw) if series is None else series

    @property
    def reg_up_mw(self) -> list[float]:
        """Reg-up series [MW]."""
        return self.reserve("reg_up")

    @property
    def reg_down_mw(self) -> list[float]:
        """Reg-down series [MW]."""
        return self.reserve("reg_down")

    @property
    def spin_mw(self) -> list[float]:
        """Spinning-reserve series [MW]."""
        return self.reserve("spin")


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
