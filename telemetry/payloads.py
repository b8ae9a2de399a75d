"""Define the MQTT payloads of the telemetry contract as pydantic models (spec 2, 7)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from telemetry.topics import ID_PATTERN

SCHEMA_VERSION = 1
MAX_TLM_BYTES = 8 * 1024
MAX_HIST_BYTES = 256 * 1024
MAX_HIST_SAMPLES = 500
MAX_LIVE_BATCH_BYTES = 64 * 1024
"""Limit of a batched live message on ``up/tlm/{dev}`` (spec 2, version 1.1)."""
MAX_LIVE_BATCH_SAMPLES = 60
LIVE_BATCH_MAX_AGE_MS = 5_000
"""A gateway sends its batched live samples at least this often [ms]."""
INT63_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
"""Upper bound of ``seq``/``sid`` (u64; the store maps them onto signed 64-bit)."""
MAX_FREE_STRING = 256
"""Longest free string (``code``, ``detail``, ``reason``, …) in characters (spec 2)."""
NO_CONTROL_PATTERN = r"^[^\x00-\x1f]*$"
"""A free string holds no control character U+0000-U+001F (spec 2, Strings)."""

Id = Annotated[str, Field(pattern=ID_PATTERN)]
U64 = Annotated[int, Field(ge=0, le=U64_MAX)]
TsMs = Annotated[int, Field(ge=0, le=INT63_MAX)]
SampleTsMs = Annotated[int, Field(ge=-INT63_MAX - 1, le=INT63_MAX)]
"""A sample time: negative values are valid JSON and go to ``too_old``, not ``schema``."""
FreeString = Annotated[
    str, Field(max_length=MAX_FREE_STRING, pattern=NO_CONTROL_PATTERN)
]
"""A free string: at most 256 characters, no control characters (spec 2, Strings)."""
Quality = Literal["good", "uncertain", "bad"]
ChaSt = Literal["OFF", "EMPTY", "DISCHARGING", "CHARGING", "FULL", "HOLDING", "TESTING"]
"""SunSpec 802 ``ChaSt`` (charge status) enumeration."""
BatState = Literal[
    "DISCONNECTED",
    "INITIALIZING",
    "CONNECTED",
    "STANDBY",
    "SOC_PROTECTION",
    "SUSPENDING",
    "FAULT",
]
"""SunSpec 802 ``State`` (battery state) enumeration."""

BATTERY_REQUIRED = (
    "soc_pct",
    "p_dc_w",
    "v_dc_v",
    "i_dc_a",
    "cell_v_max_v",
    "cell_v_min_v",
    "cell_t_max_c",
    "cell_t_min_c",
)
"""Measurement keys a battery device (``bank*``) must send (``null`` = unavailable)."""
AC_REQUIRED = ("p_ac_w",)
"""Measurement keys an AC device (``pcs*``, ``meter*``) must send."""


class PayloadError(ValueError):
    """A payload failed to parse; ``reason`` is a quarantine reason code."""

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(text)
    return value


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON that must not contain NaN or Infinity.

    Parameters
    ----------
    raw
        UTF-8 JSON text.

    Returns
    -------
    Any
        The decoded value.

    Raises
    ------
    PayloadError
        ``reason="nan_inf"`` for NaN/Infinity literals or overflowing numbers
        (``1e999``), ``reason="bad_json"`` for anything that is not valid UTF-8 JSON.
    """
    try:
        return json.loads(
            raw, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except _NonFinite as exc:
        msg = f"non-finite number {exc}"
        raise PayloadError(msg, reason="nan_inf") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(str(exc)[:200], reason="bad_json") from None


def pack_samples(
    head: Mapping[str, Any],
    samples: Sequence[Mapping[str, Any]],
    *,
    max_bytes: int,
    max_samples: int,
) -> tuple[list[tuple[bytes, int]], list[Mapping[str, Any]]]:
    """Encode ``samples`` under the envelope ``head`` into messages that fit the limits.

    Messages hold consecutive samples, at most ``max_samples`` each and at most
    ``max_bytes`` bytes of JSON each (spec 2 "Size": never publish a message over the
    limit of its topic, the broker would disconnect the publisher and paho would resend
    it forever).

    Parameters
    ----------
    head
        Envelope keys (``v``, ``site``, ``dev``, ``sid``) without ``samples``.
    samples
        Samples ``{seq, ts, q, m}`` in order.
    max_bytes, max_samples
        Limits of one message.

    Returns
    -------
    tuple
        The messages as ``(payload, number of samples)``, and the samples dropped
        because alone they exceed ``max_bytes``.
    """
    prefix = json.dumps({**head, "samples": []}, separators=(",", ":"))[:-2].encode()
    suffix = b"]}"
    room = max_bytes - len(prefix) - len(suffix)
    out: list[tuple[bytes, int]] = []
    dropped: list[Mapping[str, Any]] = []
    parts: list[bytes] = []
    size = 0
    for sample in samples:
        raw = json.dumps(sample, separators=(",", ":")).encode()
        if len(raw) > room:
            dropped.append(sample)
            continue
        extra = len(raw) + (1 if parts else 0)
        if parts and (size + extra > room or len(parts) >= max_samples):
            out.append((prefix + b",".join(parts) + suffix, len(parts)))
            parts, size, extra = [], 0, len(raw)
        parts.append(raw)
        size += extra
    if parts:
        out.append((prefix + b",".join(parts) + suffix, len(parts)))
    return out, dropped


def dumps(obj: BaseModel) -> bytes:
    """Serialise a payload model to compact UTF-8 JSON without null optional fields."""
    return obj.model_dump_json(exclude_none=True).encode()


class _Payload(BaseModel):
    # NaN/Infinity never validate (the compiled fast path relies on it; the slow path
    # names them ``nan_inf`` from the strict JSON parser first)
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, allow_inf_nan=False
    )


class Measurements(_Payload):
    """Measurements of one sample; units are in the key names (spec section 2).

    Sign convention: ``+`` = discharge/export, ``-`` = charge/import.
    ``None`` means unavailable; a missing key means not supported.
    """

    soc_pct: float | None = None
    soh_pct: float | None = None
    p_dc_w: float | None = None
    v_dc_v: float | None = None
    i_dc_a: float | None = None
    cell_v_max_v: float | None = None
    cell_v_min_v: float | None = None
    cell_v_avg_v: float | None = None
    cell_t_max_c: float | None = None
    cell_t_min_c: float | None = None
    cell_t_avg_c: float | None = None
    wh_avail_wh: float | None = None
    i_cha_max_a: float | None = None
    i_dis_max_a: float | None = None
    w_cha_max_w: float | None = None
    w_dis_max_w: float | None = None
    cha_st: ChaSt | None = None
    state: BatState | None = None
    loc_rem: Literal["REMOTE", "LOCAL"] | None = None
    evt1: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    evt2: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    evt_vnd1: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    evt_vnd2: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    n_cyc: Annotated[int, Field(ge=0)] | None = None
    n_str_con: Annotated[int, Field(ge=0)] | None = None
    p_ac_w: float | None = None
    q_ac_var: float | None = None
    f_hz: float | None = None
    v_ll_v: float | None = None
    e_exp_wh: float | None = None
    e_imp_wh: float | None = None


class TlmPayload(_Payload):
    """A live sample on ``up/tlm/{dev}``."""

    v: int
    site: Id
    dev: Id
    sid: U64
    seq: U64
    ts: SampleTsMs
    hist: bool = False
    q: Quality = "good"
    m: Measurements


class HistSample(_Payload):
    """One buffered sample inside a ``hist`` batch."""

    seq: U64
    ts: SampleTsMs
    q: Quality = "good"
    m: Measurements


class HistPayload(_Payload):
    """A batch of buffered samples on ``up/hist/{dev}`` (≤ 500 samples)."""

    v: int
    site: Id
    dev: Id
    sid: U64
    samples: Annotated[list[HistSample], Field(min_length=1, max_length=500)]


class HistEnvelope(_Payload):
    """A ``hist`` batch with its samples not yet validated (each is checked alone)."""

    v: int
    site: Id
    dev: Id
    sid: U64
    samples: Annotated[list[Any], Field(min_length=1, max_length=MAX_HIST_SAMPLES)]


class LiveBatchEnvelope(_Payload):
    """Batched live samples on ``up/tlm/{dev}`` (spec 2, version 1.1): 1-60 samples.

    Each sample is validated on its own as a :class:`HistSample`.
    """

    v: int
    site: Id
    dev: Id
    sid: U64
    hist: Literal[False] = False
    samples: Annotated[
        list[Any], Field(min_length=1, max_length=MAX_LIVE_BATCH_SAMPLES)
    ]


class LiveBatchPayload(_Payload):
    """A fully typed batched live ``tlm`` (the validator's fast path)."""

    v: int
    site: Id
    dev: Id
    sid: U64
    hist: Literal[False] = False
    samples: Annotated[
        list[HistSample], Field(min_length=1, max_length=MAX_LIVE_BATCH_SAMPLES)
    ]


class Nameplate(_Payload):
    """Nameplate from the birth message (SunSpec 802/702 names, units in keys)."""

    wh_rtg_wh: Annotated[float, Field(gt=0)]
    """802 WHRtg [Wh]."""
    ah_rtg_ah: Annotated[float, Field(gt=0)] | None = None
    """802 AHRtg [Ah]."""
    w_cha_rte_max_w: Annotated[float, Field(gt=0)]
    """802 WChaRteMax [W]."""
    w_dis_cha_rte_max_w: Annotated[float, Field(gt=0)]
    """802 WDisChaRteMax [W]."""
    soc_max_pct: Annotated[float, Field(ge=0, le=100)]
    soc_min_pct: Annotated[float, Field(ge=0, le=100)]
    w_max_rtg_w: Annotated[float, Field(gt=0)] | None = None
    """702 WMaxRtg [W]."""
    chemistry: Literal["LFP"] = "LFP"
    cells_in_series: Annotated[int, Field(ge=1, le=2000)]
    strings: Annotated[int, Field(ge=1, le=10000)] = 1


class BirthPayload(_Payload):
    """Birth certificate on ``up/birth`` (retained)."""

    v: int
    site: Id
    sid: U64
    ts: TsMs
    firmware: Annotated[FreeString, Field(max_length=64)]
    devices: Annotated[list[Id], Field(min_length=1, max_length=64)]
    nameplate: Nameplate
    seq_next: dict[Id, U64]
    temp_source: Annotated[FreeString, Field(max_length=32)] = "cell"


class StatePayload(_Payload):
    """Session state on ``up/state``; the Will carries ``online=false``."""

    v: int = SCHEMA_VERSION
    site: Id | None = None
    online: bool
    sid: U64
    ts: TsMs


class EvtPayload(_Payload):
    """Alarm/state transition on ``up/evt``.

    ``kind="backfill_unavailable"`` is the gateway's "not in buffer" answer to a
    backfill request for ``dev`` and ``from_seq...to_seq`` (records a permanent gap).
    """

    v: int
    site: Id
    sid: U64
    ts: TsMs
    kind: Literal["alarm_set", "alarm_clear", "state", "backfill_unavailable"]
    dev: Id | None = None
    code: FreeString | None = None
    detail: FreeString | None = None
    from_seq: U64 | None = None
    to_seq: U64 | None = None


class AckPayload(_Payload):
    """Command result on ``up/ack``."""

    v: int = SCHEMA_VERSION
    site: Id | None = None
    cmd_id: Annotated[FreeString, Field(min_length=1, max_length=64)]
    status: Literal["accepted", "applied", "rejected", "expired"]
    reason: FreeString | None = None
    ts: TsMs


class SetpointPayload(_Payload):
    """Setpoint on ``down/cmd`` (QoS 1, never retained, with expiry).

    ``p_ac_w_setpoint`` [W] is + for discharge; ``ramp_w_per_s`` [W/s];
    ``soc_min_pct``/``soc_max_pct`` [%]; times are ms since the Unix epoch, UTC.
    """

    v: int = SCHEMA_VERSION
    cmd_id: Annotated[str, Field(min_length=1, max_length=64)]
    site: Id
    issued_ts: TsMs
    valid_from: TsMs
    expires_at: TsMs
    mode: Literal["power", "hold_soc", "idle"] = "power"
    p_ac_w_setpoint: float
    ramp_w_per_s: Annotated[float, Field(gt=0)]
    soc_min_pct: Annotated[float, Field(ge=0, le=100)]
    soc_max_pct: Annotated[float, Field(ge=0, le=100)]
    source: Annotated[FreeString, Field(max_length=64)] = "bessfleet"

    @model_validator(mode="after")
    def _check_window(self) -> SetpointPayload:
        if self.expires_at <= self.valid_from:
            msg = f"expires_at={self.expires_at} must be > valid_from={self.valid_from}"
            raise ValueError(msg)
        if self.soc_min_pct > self.soc_max_pct:
            msg = f"soc_min_pct={self.soc_min_pct} must be <= soc_max_pct={self.soc_max_pct}"
            raise ValueError(msg)
        return self


class CtlPayload(_Payload):
    """Control on ``down/ctl``: ``rebirth`` or ``backfill`` of ``dev`` seqs."""

    op: Literal["rebirth", "backfill"]
    dev: Id | None = None
    from_seq: U64 | None = None
    to_seq: U64 | None = None

    @model_validator(mode="after")
    def _check_backfill(self) -> CtlPayload:
        if self.op == "backfill":
            if self.dev is None or self.from_seq is None or self.to_seq is None:
                msg = "backfill needs dev, from_seq and to_seq"
                raise ValueError(msg)
            if self.to_seq < self.from_seq:
                msg = f"to_seq={self.to_seq} must be >= from_seq={self.from_seq}"
                raise ValueError(msg)
        return self


class HostStatePayload(_Payload):
    """Host heartbeat on ``bess/v1/_host/state/{host_id}`` (retained)."""

    online: bool
    ts: TsMs


def is_battery_dev(dev: str) -> bool:
    """Return whether ``dev`` names a battery device (``bank*``)."""
    return dev.startswith("bank")


def is_ac_dev(dev: str) -> bool:
    """Return whether ``dev`` names an AC device (``pcs*`` or ``meter*``)."""
    return dev.startswith(("pcs", "meter"))


_BATTERY_REQUIRED_SET = frozenset(BATTERY_REQUIRED)
_AC_REQUIRED_SET = frozenset(AC_REQUIRED)


def missing_required(dev: str, m: dict[str, Any]) -> list[str]:
    """Return the required measurement keys absent from ``m`` for device ``dev``."""
    if dev.startswith("bank"):
        if _BATTERY_REQUIRED_SET.issubset(m):
            return []
        return [k for k in BATTERY_REQUIRED if k not in m]
    if dev.startswith(("pcs", "meter")):
        if _AC_REQUIRED_SET.issubset(m):
            return []
        return [k for k in AC_REQUIRED if k not in m]
    return []
