"""Validate uplink messages: hard failures to quarantine, soft findings to flags (spec 3)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

from msgspec import UNSET
from pydantic import ValidationError

from telemetry.compiled import (
    HIST_DECODER,
    LIVE_BATCH_DECODER,
    TLM_DECODER,
    CHist,
    CLiveBatch,
    CMeasurements,
    DecodeError,
    content_hash,
    content_hash_of,
    content_hash_v2_of,
    copy_record,
)
from telemetry.compiled import m_builtins as _m_builtins
from telemetry.payloads import (
    MAX_HIST_BYTES,
    MAX_LIVE_BATCH_BYTES,
    MAX_TLM_BYTES,
    SCHEMA_VERSION,
    U64_MAX,
    AckPayload,
    BirthPayload,
    EvtPayload,
    HistEnvelope,
    HistSample,
    LiveBatchEnvelope,
    Measurements,
    PayloadError,
    StatePayload,
    TlmPayload,
    loads_strict,
    missing_required,
)
from telemetry.registry import SiteRegistry, SiteSpec
from telemetry.topics import Topic, parse_topic, site_from_topic

logger = logging.getLogger(__name__)

REASONS = (
    "bad_json",
    "nan_inf",
    "schema",
    "unknown_version",
    "topic_mismatch",
    "unknown_site",
    "range_hard",
    "future_ts",
    "too_old",
    "oversize",
    "conflict_dup",
    "store_rejected",
)
"""Quarantine reason codes of spec section 6."""

FUTURE_TOLERANCE_MS = 120_000
RETENTION_MS = 35 * 86_400_000
LATE_MS = 15 * 60_000
CELL_V_CHARGE_LIMIT_V = 3.65
CELL_V_CUTOFF_V = 2.5
DEFAULT_V_DC_MAX_V = 1600.0


class Flag(IntFlag):
    """Soft-finding bits stored in the measurement row's ``flags`` column."""

    CELL_V_HIGH = 1
    """``cell_v_max_v`` > 3.65 V (LFP charge limit)."""
    CELL_V_LOW = 2
    """``cell_v_min_v`` < 2.5 V (LFP discharge cut-off)."""
    CELL_SPREAD = 4
    """Cell spread > 0.10 V while 20 % < SoC < 80 %."""
    CHARGE_TEMP = 8
    """Charging with ``cell_t_min_c`` < 0 or ``cell_t_max_c`` > 55."""
    DISCHARGE_TEMP = 16
    """Discharging outside -20...60 °C."""
    SOC_NAMEPLATE = 32
    """SoC outside the [SoCMin, SoCMax] nameplate."""
    PVI_MISMATCH = 64
    """|p - v·i| > 5 % of the power rating."""
    SOC_RATE = 128
    """SoC moved > 5 %/min beyond what power implies (reserved)."""
    LATE = 256
    """``hist`` = false but ``ts`` older than 15 min."""
    LOCAL = 512
    """``loc_rem`` = LOCAL: excluded from dispatch."""
    SOC_CLAMPED = 1024
    """SoC or SoH in [-1, 0) or (100, 101] was clamped."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-site limits the validator checks against (from birth, else the registry)."""

    v_dc_max_v: float
    """Upper bound of ``v_dc_v`` [V]: 1.2 x n_series x 3.65, or 1600 if unknown."""
    p_abs_max_w: float | None
    """Hard bound of ``|p_dc_w|`` [W]: 1.5 x max charge/discharge rating."""
    p_rating_w: float | None
    """max(charge, discharge) rating [W], for the p ~ v·i check."""
    soc_min_pct: float | None
    """Nameplate SoC minimum [%]."""
    soc_max_pct: float | None
    """Nameplate SoC maximum [%]."""


def limits_from_birth(birth: BirthPayload) -> Limits:
    """Return the validation limits implied by a birth message's nameplate."""
    plate = birth.nameplate
    rating = max(plate.w_cha_rte_max_w, plate.w_dis_cha_rte_max_w)
    return Limits(
        v_dc_max_v=1.2 * plate.cells_in_series * CELL_V_CHARGE_LIMIT_V,
        p_abs_max_w=1.5 * rating,
        p_rating_w=rating,
        soc_min_pct=plate.soc_min_pct,
        soc_max_pct=plate.soc_max_pct,
    )


def limits_from_spec(spec: SiteSpec) -> Limits:
    """Return the validation limits implied by the fleet's site spec."""
    rating = max(spec.charge_mw, spec.discharge_mw) * 1e6
    v_max = (
        1.2 * spec.cells_in_series * CELL_V_CHARGE_LIMIT_V
        if spec.cells_in_series
        else DEFAULT_V_DC_MAX_V
    )
    return Limits(
        v_dc_max_v=v_max,
        p_abs_max_w=1.5 * rating,
        p_rating_w=rating,
        soc_min_pct=100 * spec.soc_min,
        soc_max_pct=100 * spec.soc_max,
    )


@dataclass(slots=True)
class Sample:
    """A validated sample, ready to store under the key (site_id, dev_id, ts_ms).

    Treat as immutable. Not ``frozen``: it is built once per sample on the hot path,
    and a frozen dataclass costs ten ``object.__setattr__`` calls per instance.
    """

    site_id: str
    dev_id: str
    ts_ms: int
    """Sample time [ms since epoch, UTC]."""
    seq: int
    sid: int
    hist: bool
    q: str
    flags: int
    """Bitwise OR of :class:`Flag`."""
    payload_hash: str
    """Hash of (seq, ts, q, m): equal for a redelivery or a hist replay."""
    m: dict[str, Any]
    """Measurements (clamped SoC/SoH), units in the key names."""
    row: bytes | None = None
    """The store's binary ``COPY`` row of this sample (all but ``received_at_ms``)
    when the compiled path built it (:func:`telemetry.compiled.copy_record`);
    ``None``: the store builds it."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A rejected message (or hist sample) with its reason code."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    site_from_topic: str | None
    schema_v: int | None
    qos: int = 1
    dup: bool = False


@dataclass(slots=True)
class Outcome:
    """What one MQTT message turned into.

    Treat as immutable. Not ``frozen``: one is built per message on the hot path, and
    a frozen dataclass sets each of its seven fields through ``object.__setattr__``.
    """

    samples: tuple[Sample, ...] = ()
    quarantined: tuple[Quarantined, ...] = ()
    birth: BirthPayload | None = None
    state: StatePayload | None = None
    evt: EvtPayload | None = None
    ack: AckPayload | None = None
    group: str | None = None
    """Topic group of a control message (birth/state/evt/ack)."""
    run: bool = False
    """The samples are one device's, with consecutive ``seq`` in order (a batched
    message the compiled path took): the gap tracker takes them as one run."""


@dataclass(slots=True)
class Context:
    """What validation needs besides the message: known sites, limits and the clock."""

    registry: SiteRegistry
    now_ms: int
    """Current time [ms since epoch, UTC]."""
    births: dict[str, Limits] = field(default_factory=dict)
    """Limits from each site's current birth message (override the registry's)."""

    _spec_limits: dict[str, Limits] = field(default_factory=dict)

    def limits(self, site_id: str) -> Limits | None:
        """Return the limits of ``site_id`` from its birth, else from the registry."""
        got = self.births.get(site_id)
        if got is not None:
            return got
        got = self._spec_limits.get(site_id)
        if got is None:
            spec = self.registry.get(site_id)
            if spec is None:
                return None
            got = self._spec_limits[site_id] = limits_from_spec(spec)
        return got


class _Hard(Exception):
    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def m_dict(m: Measurements) -> dict[str, Any]:
    """Return the measurements a sample actually sent (``None`` kept, absent dropped)."""
    values = m.__dict__
    return {k: values[k] for k in sorted(m.model_fields_set)}


def payload_hash(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """Return a stable hash of a sample's content (independent of ``hist``/``sid``).

    ``m`` must come from :func:`m_dict` (validated values) so that a redelivery or a
    ``hist`` replay of the same sample hashes the same; equal to the compiled path's
    :func:`telemetry.compiled.content_hash` of the same sample.
    """
    return content_hash_of(seq, ts_ms, q, m)


def previous_payload_hash(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """Return the content hash rows stored by the previous compiled path carry.

    BLAKE2b-128 of the canonical JSON of the sample: a row stored with it is a
    duplicate (not a conflict) of a sample with the same content.
    """
    return content_hash_v2_of(seq, ts_ms, q, m)


def legacy_payload_hash(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """Return the content hash rows stored before the compiled path carry.

    A row stored with it is a duplicate (not a conflict) of a sample with the same
    content (``m`` as sent, sorted by key).
    """
    body = repr((seq, ts_ms, q, sorted(m.items())))
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def _schema_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    text = "; ".join(parts)[:500]
    # a key may carry control characters: show them escaped, never store them
    return "".join(ch if ch >= " " else f"\\x{ord(ch):02x}" for ch in text)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        msg = f"{name}={value} outside [{low}, {high}]"
        raise _Hard(msg, reason="range_hard")


_SOC_CLAMPED = int(Flag.SOC_CLAMPED)
_CELL_V_HIGH = int(Flag.CELL_V_HIGH)
_CELL_V_LOW = int(Flag.CELL_V_LOW)
_CELL_SPREAD = int(Flag.CELL_SPREAD)
_CHARGE_TEMP = int(Flag.CHARGE_TEMP)
_DISCHARGE_TEMP = int(Flag.DISCHARGE_TEMP)
_SOC_NAMEPLATE = int(Flag.SOC_NAMEPLATE)
_PVI_MISMATCH = int(Flag.PVI_MISMATCH)
_LATE = int(Flag.LATE)
_LOCAL = int(Flag.LOCAL)
_HARD_RANGES = (
    ("cell_v_max_v", 0.5, 4.5),
    ("cell_v_min_v", 0.5, 4.5),
    ("cell_v_avg_v", 0.5, 4.5),
    ("cell_t_max_c", -40.0, 100.0),
    ("cell_t_min_c", -40.0, 100.0),
    ("cell_t_avg_c", -40.0, 100.0),
)


def _check_sample(
    site: str,
    dev: str,
    ts_ms: int,
    hist: bool,
    m: Measurements,
    raw_m: dict[str, Any],
    limits: Limits | None,
    now_ms: int,
) -> tuple[int, dict[str, Any]]:
    """Return (flags, stored measurements) or raise _Hard.

    Runs once per sample on the hot path: plain ints for the flags, values read once.
    """
    if ts_ms > now_ms + FUTURE_TOLERANCE_MS:
        msg = f"ts={ts_ms} is {(ts_ms - now_ms) / 1000:.0f} s in the future (> 120 s)"
        raise _Hard(msg, reason="future_ts")
    if ts_ms < now_ms - RETENTION_MS:
        msg = f"ts={ts_ms} older than the 35 d retention horizon"
        raise _Hard(msg, reason="too_old")
    missing = missing_required(dev, raw_m)
    if missing:
        msg = f"m: missing required keys {missing} for dev {dev}"
        raise _Hard(msg, reason="schema")
    values = m.__dict__
    flags = 0
    stored = raw_m
    for name in ("soc_pct", "soh_pct"):
        value = values[name]
        if value is None:
            continue
        _check_range(f"m.{name}", value, -1.0, 101.0)
        if not 0.0 <= value <= 100.0:
            if stored is raw_m:
                stored = dict(raw_m)
            stored[name] = min(100.0, max(0.0, value))
            flags |= _SOC_CLAMPED
    for name, low, high in _HARD_RANGES:
        value = values[name]
        if value is not None and not low <= value <= high:
            _check_range(f"m.{name}", value, low, high)
    v_lo, v_avg, v_hi = m.cell_v_min_v, m.cell_v_avg_v, m.cell_v_max_v
    if v_lo is not None and v_hi is not None and v_lo > v_hi + 0.001:
        msg = f"m.cell_v_min_v={v_lo} > m.cell_v_max_v={v_hi}"
        raise _Hard(msg, reason="range_hard")
    if v_avg is not None and (
        (v_lo is not None and v_avg < v_lo - 0.001)
        or (v_hi is not None and v_avg > v_hi + 0.001)
    ):
        msg = f"m.cell_v_avg_v={v_avg} not within [cell_v_min_v, cell_v_max_v] ±1 mV"
        raise _Hard(msg, reason="range_hard")
    t_lo, t_hi = m.cell_t_min_c, m.cell_t_max_c
    if t_lo is not None and t_hi is not None and t_lo > t_hi:
        msg = f"m.cell_t_min_c={t_lo} > m.cell_t_max_c={t_hi}"
        raise _Hard(msg, reason="range_hard")
    v_max = limits.v_dc_max_v if limits else DEFAULT_V_DC_MAX_V
    v_dc = m.v_dc_v
    if v_dc is not None and not 0.0 <= v_dc <= v_max:
        _check_range("m.v_dc_v", v_dc, 0.0, v_max)
    p = m.p_dc_w
    if p is not None and limits is not None and limits.p_abs_max_w is not None:
        _check_range("m.p_dc_w", p, -limits.p_abs_max_w, limits.p_abs_max_w)
    flags |= _soft_flags(
        v_lo,
        v_hi,
        stored.get("soc_pct"),
        p,
        t_lo,
        t_hi,
        v_dc,
        m.i_dc_a,
        limits,
        late=not hist and ts_ms < now_ms - LATE_MS,
        local=m.loc_rem == "LOCAL",
    )
    del site
    return flags, stored


def _soft_flags(
    v_lo: float | None,
    v_hi: float | None,
    soc: float | None,
    p: float | None,
    t_lo: float | None,
    t_hi: float | None,
    v_dc: float | None,
    i_dc: float | None,
    limits: Limits | None,
    *,
    late: bool,
    local: bool,
) -> int:
    """Return the soft-finding flags of a sample that passed the hard checks.

    One rule set for both validation paths; None = not sent (or null). ``soc`` is the
    stored (clamped) value.
    """
    flags = 0
    if v_hi is not None and v_hi > CELL_V_CHARGE_LIMIT_V:
        flags |= _CELL_V_HIGH
    if v_lo is not None and v_lo < CELL_V_CUTOFF_V:
        flags |= _CELL_V_LOW
    if (
        v_lo is not None
        and v_hi is not None
        and soc is not None
        and 20.0 < soc < 80.0
        and v_hi - v_lo > 0.10
    ):
        flags |= _CELL_SPREAD
    if p is not None and t_lo is not None and t_hi is not None:
        if p < 0 and (t_lo < 0.0 or t_hi > 55.0):
            flags |= _CHARGE_TEMP
        if p > 0 and (t_lo < -20.0 or t_hi > 60.0):
            flags |= _DISCHARGE_TEMP
    if soc is not None and limits is not None:
        lo, hi = limits.soc_min_pct, limits.soc_max_pct
        # half a percent of slack: gateways round SoC
        if (lo is not None and soc < lo - 0.5) or (hi is not None and soc > hi + 0.5):
            flags |= _SOC_NAMEPLATE
    if (
        p is not None
        and v_dc is not None
        and i_dc is not None
        and limits is not None
        and limits.p_rating_w
        and abs(p - v_dc * i_dc) > 0.05 * limits.p_rating_w
    ):
        flags |= _PVI_MISMATCH
    if late:
        flags |= _LATE
    if local:
        flags |= _LOCAL
    return flags


def _quarantine(
    topic: str,
    payload: bytes,
    reason: str,
    detail: str,
    schema_v: int | None,
    qos: int,
    dup: bool,
) -> Outcome:
    return Outcome(
        quarantined=(
            Quarantined(
                topic=topic,
                payload=payload,
                reason=reason,
                detail=detail[:1000],
                site_from_topic=site_from_topic(topic),
                schema_v=schema_v,
                qos=qos,
                dup=dup,
            ),
        )
    )


def validate_message(
    topic: str, payload: bytes, ctx: Context, *, qos: int = 1, dup: bool = False
) -> Outcome:
    """Validate one uplink message; never raises for any payload or topic.

    Parameters
    ----------
    topic
        The MQTT topic the message arrived on.
    payload
        The raw payload bytes.
    ctx
        Known sites, per-site limits and the current time.
    qos, dup
        The MQTT QoS and DUP flag, kept in quarantine rows.

    Returns
    -------
    Outcome
        Samples to store and/or quarantine rows, or a parsed control message.
    """
    try:
        return _validate(topic, payload, ctx, qos, dup)
    except Exception as exc:  # a validator bug must not lose the message
        logger.exception("validator failed on topic %s", topic)
        return _quarantine(
            topic, payload, "schema", f"validator error: {exc!r}", None, qos, dup
        )


def _validate(topic: str, payload: bytes, ctx: Context, qos: int, dup: bool) -> Outcome:
    parsed = parse_topic(topic)
    if parsed is None:
        return _quarantine(
            topic, payload, "schema", "topic outside the grammar", None, qos, dup
        )
    # a tlm may be the batched live form (≤ 64 KiB); the one-sample form's 8 KiB
    # limit is checked once the form is known
    limit = MAX_LIVE_BATCH_BYTES if parsed.kind == "tlm" else MAX_HIST_BYTES
    if len(payload) > limit:
        msg = f"{len(payload)} bytes > {limit} for {parsed.kind}"
        return _quarantine(topic, payload, "oversize", msg, None, qos, dup)
    if parsed.kind in ("tlm", "hist"):
        fast = (
            _fast_batch(parsed, payload, ctx)
            if parsed.kind == "hist" or b'"samples"' in payload
            else _fast_tlm(parsed, payload, ctx)
        )
        if fast is not None:
            return fast
    try:
        obj = loads_strict(payload)
    except PayloadError as exc:
        return _quarantine(topic, payload, exc.reason, exc.detail, None, qos, dup)
    if not isinstance(obj, dict):
        msg = f"top level is {type(obj).__name__}, expected an object"
        return _quarantine(topic, payload, "schema", msg, None, qos, dup)
    v = obj.get("v")
    schema_v = v if isinstance(v, int) and not isinstance(v, bool) else None
    if "v" in obj and (schema_v is None or schema_v != SCHEMA_VERSION):
        if schema_v is None:
            msg = f"v={v!r} is not an integer"
            return _quarantine(topic, payload, "schema", msg, None, qos, dup)
        msg = f"v={schema_v} is not supported (expected {SCHEMA_VERSION})"
        return _quarantine(topic, payload, "unknown_version", msg, schema_v, qos, dup)
    body_site = obj.get("site")
    if body_site is not None and body_site != parsed.site:
        msg = f"payload site={str(body_site)[:64]!r} != topic site {parsed.site!r}"
        return _quarantine(topic, payload, "topic_mismatch", msg, schema_v, qos, dup)
    body_dev = obj.get("dev")
    if parsed.dev is not None and body_dev is not None and body_dev != parsed.dev:
        msg = f"payload dev={str(body_dev)[:64]!r} != topic dev {parsed.dev!r}"
        return _quarantine(topic, payload, "topic_mismatch", msg, schema_v, qos, dup)
    spec = ctx.registry.get(parsed.site)
    if spec is None:
        msg = f"site {parsed.site!r} is not in the registry"
        return _quarantine(topic, payload, "unknown_site", msg, schema_v, qos, dup)
    if spec.group != parsed.group:
        msg = f"topic group {parsed.group!r} != site group {spec.group!r}"
        return _quarantine(topic, payload, "topic_mismatch", msg, schema_v, qos, dup)
    try:
        return _dispatch(parsed, obj, payload, topic, ctx, schema_v, qos, dup)
    except ValidationError as exc:
        detail = _schema_detail(exc)
        return _quarantine(topic, payload, "schema", detail, schema_v, qos, dup)
    except _Hard as exc:
        return _quarantine(topic, payload, exc.reason, exc.detail, schema_v, qos, dup)


def _check_compiled(
    dev: str,
    ts_ms: int,
    hist: bool,
    m: CMeasurements,
    limits: Limits | None,
    now_ms: int,
) -> tuple[int, dict[str, Any] | None] | None:
    """:func:`_check_sample` on a compiled sample; ``None`` when a hard check fails.

    Returns the flags and, when SoC or SoH was clamped, the measurements as stored
    (else ``None``: they are ``m`` as sent).

    The same rules in the same order; a failure is left to the slow path, which names
    it. A value is "sent and not null" when it is a ``float`` (``UNSET``/``None`` not).
    """
    if ts_ms > now_ms + FUTURE_TOLERANCE_MS or ts_ms < now_ms - RETENTION_MS:
        return None
    soc, soh = m.soc_pct, m.soh_pct
    v_hi, v_lo, v_avg = m.cell_v_max_v, m.cell_v_min_v, m.cell_v_avg_v
    t_hi, t_lo, t_avg = m.cell_t_max_c, m.cell_t_min_c, m.cell_t_avg_c
    v_dc, p, i_dc = m.v_dc_v, m.p_dc_w, m.i_dc_a
    if dev.startswith("bank"):
        if (
            soc is UNSET
            or p is UNSET
            or v_dc is UNSET
            or i_dc is UNSET
            or v_hi is UNSET
            or v_lo is UNSET
            or t_hi is UNSET
            or t_lo is UNSET
        ):
            return None
    elif dev.startswith(("pcs", "meter")) and m.p_ac_w is UNSET:
        return None
    flags = 0
    stored: dict[str, Any] | None = None
    if type(soc) is float:
        if not -1.0 <= soc <= 101.0:
            return None
        if not 0.0 <= soc <= 100.0:
            stored = _m_builtins(m)
            soc = stored["soc_pct"] = min(100.0, max(0.0, soc))
            flags |= _SOC_CLAMPED
    else:
        soc = None
    if type(soh) is float:
        if not -1.0 <= soh <= 101.0:
            return None
        if not 0.0 <= soh <= 100.0:
            if stored is None:
                stored = _m_builtins(m)
            stored["soh_pct"] = min(100.0, max(0.0, soh))
            flags |= _SOC_CLAMPED
    f_hi = type(v_hi) is float
    f_lo = type(v_lo) is float
    f_avg = type(v_avg) is float
    if (
        (f_hi and not 0.5 <= v_hi <= 4.5)  # type: ignore[operator]
        or (f_lo and not 0.5 <= v_lo <= 4.5)  # type: ignore[operator]
        or (f_avg and not 0.5 <= v_avg <= 4.5)  # type: ignore[operator]
    ):
        return None
    ft_hi = type(t_hi) is float
    ft_lo = type(t_lo) is float
    if (
        (ft_hi and not -40.0 <= t_hi <= 100.0)  # type: ignore[operator]
        or (ft_lo and not -40.0 <= t_lo <= 100.0)  # type: ignore[operator]
        or (type(t_avg) is float and not -40.0 <= t_avg <= 100.0)
    ):
        return None
    if f_lo and f_hi and v_lo > v_hi + 0.001:  # type: ignore[operator]
        return None
    if f_avg and (
        (f_lo and v_avg < v_lo - 0.001)  # type: ignore[operator]
        or (f_hi and v_avg > v_hi + 0.001)  # type: ignore[operator]
    ):
        return None
    if ft_lo and ft_hi and t_lo > t_hi:  # type: ignore[operator]
        return None
    v_max = limits.v_dc_max_v if limits else DEFAULT_V_DC_MAX_V
    f_v = type(v_dc) is float
    if f_v and not 0.0 <= v_dc <= v_max:  # type: ignore[operator]
        return None
    f_p = type(p) is float
    if (
        f_p
        and limits is not None
        and limits.p_abs_max_w is not None
        and not -limits.p_abs_max_w <= p <= limits.p_abs_max_w  # type: ignore[operator]
    ):
        return None
    flags |= _soft_flags(
        v_lo if f_lo else None,  # type: ignore[arg-type]
        v_hi if f_hi else None,  # type: ignore[arg-type]
        soc,
        p if f_p else None,  # type: ignore[arg-type]
        t_lo if ft_lo else None,  # type: ignore[arg-type]
        t_hi if ft_hi else None,  # type: ignore[arg-type]
        v_dc if f_v else None,  # type: ignore[arg-type]
        i_dc if type(i_dc) is float else None,
        limits,
        late=not hist and ts_ms < now_ms - LATE_MS,
        local=m.loc_rem == "LOCAL",
    )
    return flags, stored


def _compiled_sample(
    site: str,
    dev: str,
    ts: int,
    seq: int,
    sid: int,
    hist: bool,
    q: str,
    m: CMeasurements,
    checked: tuple[int, dict[str, Any] | None],
) -> Sample:
    """Return a sample the compiled path validated, with its hash and ``COPY`` row.

    ``checked`` is what :func:`_check_compiled` returned for it.
    """
    flags, stored = checked
    digest = content_hash(seq, ts, q, m)
    row = copy_record(site, dev, ts, seq, sid, hist, q, flags, digest, m, stored)
    if stored is None:
        stored = _m_builtins(m)
    return Sample(site, dev, ts, seq, sid, hist, q, flags, digest, stored, row)


def _fast_tlm(parsed: Topic, payload: bytes, ctx: Context) -> Outcome | None:
    """Validate a well-formed one-sample tlm with the compiled decoder.

    ``None`` (slow path) for anything unusual (schema error, non-finite number,
    mismatch, unknown site, hard range failure, over 8 KiB): the slow path assigns the
    exact reason.
    """
    if len(payload) > MAX_TLM_BYTES:
        return None
    try:
        tlm = TLM_DECODER.decode(payload)
    except DecodeError:
        return None
    site = tlm.site
    spec = ctx.registry.get(site)
    if (
        tlm.v != SCHEMA_VERSION
        or site != parsed.site
        or tlm.dev != parsed.dev
        or spec is None
        or spec.group != parsed.group
        or tlm.seq > U64_MAX
        or tlm.sid > U64_MAX
    ):
        return None
    checked = _check_compiled(
        tlm.dev, tlm.ts, tlm.hist, tlm.m, ctx.limits(site), ctx.now_ms
    )
    if checked is None:
        return None
    sample = _compiled_sample(
        site, tlm.dev, tlm.ts, tlm.seq, tlm.sid, tlm.hist, tlm.q, tlm.m, checked
    )
    return Outcome(samples=(sample,))


def _fast_batch(parsed: Topic, payload: bytes, ctx: Context) -> Outcome | None:
    """Validate a well-formed hist or batched live tlm in one compiled pass.

    ``None`` (slow path, per-sample quarantine) when anything is unusual.
    """
    live = parsed.kind == "tlm"
    if not live and len(payload) > MAX_HIST_BYTES:
        return None
    try:
        batch: CLiveBatch | CHist = (
            LIVE_BATCH_DECODER.decode(payload) if live else HIST_DECODER.decode(payload)
        )
    except DecodeError:
        return None
    site, dev, sid = batch.site, batch.dev, batch.sid
    spec = ctx.registry.get(site)
    if (
        batch.v != SCHEMA_VERSION
        or site != parsed.site
        or dev != parsed.dev
        or spec is None
        or spec.group != parsed.group
        or sid > U64_MAX
    ):
        return None
    limits = ctx.limits(site)
    now = ctx.now_ms
    hist = not live
    samples: list[Sample] = []
    append = samples.append
    run = True
    last = -1
    for item in batch.samples:
        seq, ts, q, m = item.seq, item.ts, item.q, item.m
        if seq > U64_MAX:
            return None
        checked = _check_compiled(dev, ts, hist, m, limits, now)
        if checked is None:
            return None
        append(_compiled_sample(site, dev, ts, seq, sid, hist, q, m, checked))
        if run and last >= 0 and seq != last + 1:
            run = False
        last = seq
    return Outcome(samples=tuple(samples), run=run)


def _dispatch(
    parsed: Topic,
    obj: dict[str, Any],
    payload: bytes,
    topic: str,
    ctx: Context,
    schema_v: int | None,
    qos: int,
    dup: bool,
) -> Outcome:
    kind = parsed.kind
    if kind in ("tlm", "hist") and ("site" not in obj or "dev" not in obj):
        missing = [k for k in ("site", "dev") if k not in obj]
        msg = f"missing required keys {missing}"
        raise _Hard(msg, reason="schema")
    if kind == "tlm" and "samples" in obj:
        return _validate_hist(obj, topic, ctx, schema_v, qos, dup, live=True)
    if kind == "tlm" and len(payload) > MAX_TLM_BYTES:
        msg = f"{len(payload)} bytes > {MAX_TLM_BYTES} for a one-sample tlm"
        raise _Hard(msg, reason="oversize")
    if kind == "tlm":
        tlm = TlmPayload.model_validate(obj)
        flags, stored = _check_sample(
            tlm.site,
            tlm.dev,
            tlm.ts,
            tlm.hist,
            tlm.m,
            m_dict(tlm.m),
            ctx.limits(tlm.site),
            ctx.now_ms,
        )
        sample = Sample(
            site_id=tlm.site,
            dev_id=tlm.dev,
            ts_ms=tlm.ts,
            seq=tlm.seq,
            sid=tlm.sid,
            hist=tlm.hist,
            q=tlm.q,
            flags=flags,
            payload_hash=payload_hash(tlm.seq, tlm.ts, tlm.q, m_dict(tlm.m)),
            m=stored,
        )
        return Outcome(samples=(sample,))
    if kind == "hist":
        return _validate_hist(obj, topic, ctx, schema_v, qos, dup)
    if kind == "birth":
        birth = BirthPayload.model_validate(obj)
        return Outcome(birth=birth, group=parsed.group)
    if kind == "state":
        return Outcome(state=StatePayload.model_validate(obj), group=parsed.group)
    if kind == "evt":
        return Outcome(evt=EvtPayload.model_validate(obj), group=parsed.group)
    if kind == "ack":
        return Outcome(ack=AckPayload.model_validate(obj), group=parsed.group)
    msg = f"unexpected topic type {kind!r}"
    raise _Hard(msg, reason="schema")


def _seq_text(raw: Any) -> str:
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return str(seq)[:24]


def _validate_hist(
    obj: dict[str, Any],
    topic: str,
    ctx: Context,
    schema_v: int | None,
    qos: int,
    dup: bool,
    *,
    live: bool = False,
) -> Outcome:
    """Validate a ``hist`` batch, or a batched live ``tlm`` (``live=True``).

    Every sample is validated on its own: a bad one is quarantined alone (re-wrapped
    so that ``reprocess`` can replay it), the others are stored.
    """
    hist: HistEnvelope | LiveBatchEnvelope = (
        LiveBatchEnvelope.model_validate(obj)
        if live
        else HistEnvelope.model_validate(obj)
    )
    limits = ctx.limits(hist.site)
    samples: list[Sample] = []
    bad: list[Quarantined] = []
    for index, raw in enumerate(hist.samples):
        try:
            try:
                item = HistSample.model_validate(raw)
            except ValidationError as exc:
                raise _Hard(_schema_detail(exc), reason="schema") from None
            flags, stored = _check_sample(
                hist.site,
                hist.dev,
                item.ts,
                not live,
                item.m,
                m_dict(item.m),
                limits,
                ctx.now_ms,
            )
        except _Hard as exc:
            # keep the bad sample alone, re-wrapped so that reprocess can replay it
            one = {**{k: obj[k] for k in ("v", "site", "dev", "sid")}, "samples": [raw]}
            bad.append(
                Quarantined(
                    topic=topic,
                    payload=json.dumps(one, separators=(",", ":")).encode(),
                    reason=exc.reason,
                    detail=f"samples[{index}] seq={_seq_text(raw)}: {exc.detail}"[
                        :1000
                    ],
                    site_from_topic=hist.site,
                    schema_v=schema_v,
                    qos=qos,
                    dup=dup,
                )
            )
            continue
        samples.append(
            Sample(
                site_id=hist.site,
                dev_id=hist.dev,
                ts_ms=item.ts,
                seq=item.seq,
                sid=hist.sid,
                hist=not live,
                q=item.q,
                flags=flags,
                payload_hash=payload_hash(item.seq, item.ts, item.q, m_dict(item.m)),
                m=stored,
            )
        )
    return Outcome(samples=tuple(samples), quarantined=tuple(bad))
