"""Compiled (msgspec) decoding of the sample-carrying payloads: the ingest's hot path.

The pydantic models of :mod:`telemetry.payloads` remain the reference: this module only
accelerates messages that are well formed. Its structs mirror the models field by field
(same names, types, enumerations, bounds, unknown keys forbidden, ints never accepted
as bools nor floats as ints, NaN/Infinity never accepted); a message they reject, or a
sample that fails a hard check, goes to the pydantic path, which assigns the exact
quarantine reason. A message is never accepted here that the reference would reject:
``tests/telemetry/test_compiled.py`` compares both on valid and invalid payloads.

Absent measurement keys decode as :data:`msgspec.UNSET` (a ``null`` stays ``None``), so
"not supported" and "unavailable" stay distinct, as in the models' ``fields_set``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from telemetry.payloads import (
    INT63_MAX,
    MAX_HIST_SAMPLES,
    MAX_LIVE_BATCH_SAMPLES,
    BatState,
    ChaSt,
    Quality,
)
from telemetry.topics import ID_PATTERN

_Id = Annotated[str, Meta(pattern=ID_PATTERN)]
_U64 = Annotated[int, Meta(ge=0)]
"""u64: msgspec bounds stop at int64, the upper bound (2**64-1) is checked in Python."""
_Ts = Annotated[int, Meta(ge=-INT63_MAX - 1, le=INT63_MAX)]
_U32 = Annotated[int, Meta(ge=0, le=2**32 - 1)]
_Count = Annotated[int, Meta(ge=0)]
_F = float | None | UnsetType


class CMeasurements(Struct, forbid_unknown_fields=True, omit_defaults=False):
    """Mirror of :class:`telemetry.payloads.Measurements` (absent = ``UNSET``)."""

    soc_pct: _F = UNSET
    soh_pct: _F = UNSET
    p_dc_w: _F = UNSET
    v_dc_v: _F = UNSET
    i_dc_a: _F = UNSET
    cell_v_max_v: _F = UNSET
    cell_v_min_v: _F = UNSET
    cell_v_avg_v: _F = UNSET
    cell_t_max_c: _F = UNSET
    cell_t_min_c: _F = UNSET
    cell_t_avg_c: _F = UNSET
    wh_avail_wh: _F = UNSET
    i_cha_max_a: _F = UNSET
    i_dis_max_a: _F = UNSET
    w_cha_max_w: _F = UNSET
    w_dis_max_w: _F = UNSET
    cha_st: ChaSt | UnsetType | None = UNSET
    state: BatState | UnsetType | None = UNSET
    loc_rem: Literal["REMOTE", "LOCAL"] | UnsetType | None = UNSET
    evt1: _U32 | UnsetType | None = UNSET
    evt2: _U32 | UnsetType | None = UNSET
    evt_vnd1: _U32 | UnsetType | None = UNSET
    evt_vnd2: _U32 | UnsetType | None = UNSET
    n_cyc: _Count | UnsetType | None = UNSET
    n_str_con: _Count | UnsetType | None = UNSET
    p_ac_w: _F = UNSET
    q_ac_var: _F = UNSET
    f_hz: _F = UNSET
    v_ll_v: _F = UNSET
    e_exp_wh: _F = UNSET
    e_imp_wh: _F = UNSET


class CTlm(Struct, forbid_unknown_fields=True):
    """Mirror of :class:`telemetry.payloads.TlmPayload`."""

    v: int
    site: _Id
    dev: _Id
    sid: _U64
    seq: _U64
    ts: _Ts
    m: CMeasurements
    hist: bool = False
    q: Quality = "good"


class CSample(Struct, forbid_unknown_fields=True):
    """Mirror of :class:`telemetry.payloads.HistSample`."""

    seq: _U64
    ts: _Ts
    m: CMeasurements
    q: Quality = "good"


class CLiveBatch(Struct, forbid_unknown_fields=True):
    """Mirror of :class:`telemetry.payloads.LiveBatchPayload` (spec 2, version 1.1)."""

    v: int
    site: _Id
    dev: _Id
    sid: _U64
    samples: Annotated[
        list[CSample], Meta(min_length=1, max_length=MAX_LIVE_BATCH_SAMPLES)
    ]
    hist: Literal[False] = False


class CHist(Struct, forbid_unknown_fields=True):
    """Mirror of :class:`telemetry.payloads.HistPayload`."""

    v: int
    site: _Id
    dev: _Id
    sid: _U64
    samples: Annotated[list[CSample], Meta(min_length=1, max_length=MAX_HIST_SAMPLES)]


TLM_DECODER = msgspec.json.Decoder(CTlm)
LIVE_BATCH_DECODER = msgspec.json.Decoder(CLiveBatch)
HIST_DECODER = msgspec.json.Decoder(CHist)
DecodeError = (msgspec.ValidationError, msgspec.DecodeError)

_ENCODE = msgspec.json.Encoder().encode
_PACK = msgspec.msgpack.Encoder().encode
_to_builtins = msgspec.to_builtins
_blake2b = hashlib.blake2b

STORE_COLUMNS = (
    "soc_pct",
    "soh_pct",
    "p_dc_w",
    "v_dc_v",
    "i_dc_a",
    "cell_v_max_v",
    "cell_v_min_v",
    "cell_v_avg_v",
    "cell_t_max_c",
    "cell_t_min_c",
    "cell_t_avg_c",
    "i_cha_max_a",
    "i_dis_max_a",
    "p_ac_w",
)
"""Measurements the store keeps in columns of their own, in its column order
(``fleet.store.telemetry_tables.MEASUREMENT_COLUMNS`` is this tuple; the rest goes to
``m_extra``)."""
_TWO_63 = 2**63
_TWO_64 = 2**64


def m_builtins(m: CMeasurements) -> dict[str, Any]:
    """Return the measurements a sample sent as a dict (``None`` kept, absent dropped)."""
    out: dict[str, Any] = _to_builtins(m)
    return out


# -- the store's binary COPY rows, built where a sample is validated -----------------
# A row of PostgreSQL's binary COPY format is an int16 field count, then per field an
# int32 length (-1: NULL) and the value in network order. The store copies these
# columns, in this order (``received_at_ms`` last, appended by the writer):
COPY_COLUMNS = (
    "site_id",
    "dev_id",
    "ts_ms",
    "seq",
    "sid",
    "hist",
    "flags",
    "payload_hash",
    "q",
    *STORE_COLUMNS,
    "m_extra",
    "received_at_ms",
)
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
COPY_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_NUMS = struct.Struct(">iqiqiqi?iii32s").pack
_FIELDS = CMeasurements.__struct_fields__
_column_values = itemgetter(*(_FIELDS.index(c) for c in STORE_COLUMNS))
_EXTRA_FIELDS = tuple(f for f in _FIELDS if f not in STORE_COLUMNS)
_extra_values = itemgetter(*(_FIELDS.index(f) for f in _EXTRA_FIELDS))
_astuple = msgspec.structs.astuple
_CACHE_MAX = 4096
_prefixes: dict[tuple[str, str], bytes] = {}
_q_fields: dict[str, bytes] = {}
_extra_fields: dict[tuple[Any, ...], bytes] = {}


def _text_field(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _prefix(site: str, dev: str) -> bytes:
    key = (site, dev)
    got = _prefixes.get(key)
    if got is None:
        if len(_prefixes) >= _CACHE_MAX:
            _prefixes.clear()
        got = _prefixes[key] = (
            len(COPY_COLUMNS).to_bytes(2, "big") + _text_field(site) + _text_field(dev)
        )
    return got


_Packer = tuple[Callable[[tuple[Any, ...]], tuple[Any, ...]], tuple[Any, ...], Any]
_packers: dict[str, _Packer] = {}


def _new_packer(columns: tuple[Any, ...]) -> _Packer:
    """Return ``(nulls_of, nulls, pack)`` for the presence pattern of ``columns``.

    A ``float`` is a present value (8 bytes); anything else (``None``, ``UNSET``) is
    NULL. ``pack`` packs a row of this pattern in one ``struct`` call, ``nulls_of``
    picks the values at its NULL positions, ``nulls`` are those of ``columns``. The
    code of both is generated once per pattern (a handful exist: one per kind of
    device).
    """
    floats = [type(v) is float for v in columns]
    fmt = ">" + "".join("id" if f else "i" for f in floats)
    args = ", ".join(f"8, c[{i}]" if f else "-1" for i, f in enumerate(floats))
    null_items = "".join(f"c[{i}], " for i, f in enumerate(floats) if not f)
    scope = {"pack": struct.Struct(fmt).pack}
    pack = eval(f"lambda c: pack({args})", scope)
    nulls_of = eval(f"lambda c: ({null_items})")
    return nulls_of, nulls_of(columns), pack


def _pack_columns(dev: str, columns: tuple[Any, ...]) -> bytes:
    """Pack the measurement columns; the device's last pattern is tried first."""
    got = _packers.get(dev)
    if got is not None and got[0](columns) == got[1]:
        try:
            packed: bytes = got[2](columns)
        except struct.error:  # a NULL where the pattern has a value
            pass
        else:
            return packed
    if len(_packers) >= _CACHE_MAX:
        _packers.clear()
    got = _packers[dev] = _new_packer(columns)
    packed = got[2](columns)
    return packed


def _extra_field(values: tuple[Any, ...]) -> bytes:
    """Return the ``m_extra`` field: jsonb (version 1) of the keys sent, else NULL."""
    got = _extra_fields.get(values)
    if got is None:
        extra = {
            k: v for k, v in zip(_EXTRA_FIELDS, values, strict=True) if v is not UNSET
        }
        if extra:
            body = b"\x01" + _ENCODE(extra)
            got = len(body).to_bytes(4, "big") + body
        else:
            got = _NULL
        if len(_extra_fields) >= _CACHE_MAX:
            _extra_fields.clear()
        _extra_fields[values] = got
    return got


def _q_field(q: str) -> bytes:
    got = _q_fields.get(q)
    if got is None:
        got = _q_fields[q] = _text_field(q)
    return got


def _record(
    site: str,
    dev: str,
    ts_ms: int,
    seq: int,
    sid: int,
    hist: bool,
    q: str,
    flags: int,
    payload_hash: str,
    columns: tuple[Any, ...],
    extra: bytes,
) -> bytes:
    prefix = _prefixes.get((site, dev)) or _prefix(site, dev)
    return b"".join(
        (
            prefix,
            _NUMS(
                8,
                ts_ms,
                8,
                seq if seq < _TWO_63 else seq - _TWO_64,
                8,
                sid if sid < _TWO_63 else sid - _TWO_64,
                1,
                hist,
                4,
                flags,
                32,
                payload_hash.encode(),
            ),
            _q_fields.get(q) or _q_field(q),
            _pack_columns(dev, columns),
            extra,
        )
    )


def copy_record(
    site: str,
    dev: str,
    ts_ms: int,
    seq: int,
    sid: int,
    hist: bool,
    q: str,
    flags: int,
    payload_hash: str,
    m: CMeasurements,
    stored: dict[str, Any] | None = None,
) -> bytes:
    """Return a sample's row of the store's binary ``COPY`` (all but ``received_at_ms``).

    Built in the validator thread from the decoded struct, so the writer only joins
    bytes. ``stored`` (the measurements as stored) is needed only when SoC or SoH was
    clamped; the columns are then taken from it.
    """
    values = _astuple(m)
    columns = (
        _column_values(values)
        if stored is None
        else tuple(map(stored.get, STORE_COLUMNS))
    )
    extra_values = _extra_values(values)
    extra = _extra_fields.get(extra_values) or _extra_field(extra_values)
    return _record(
        site, dev, ts_ms, seq, sid, hist, q, flags, payload_hash, columns, extra
    )


def copy_record_of(
    site: str,
    dev: str,
    ts_ms: int,
    seq: int,
    sid: int,
    hist: bool,
    q: str,
    flags: int,
    payload_hash: str,
    m: Mapping[str, Any],
) -> bytes:
    """:func:`copy_record` of a sample whose measurements are a mapping (any path)."""
    columns = tuple(
        None if (v := m.get(c)) is None else float(v) for c in STORE_COLUMNS
    )
    extra = tuple(m.get(f, UNSET) for f in _EXTRA_FIELDS)
    return _record(
        site,
        dev,
        ts_ms,
        seq,
        sid,
        hist,
        q,
        flags,
        payload_hash,
        columns,
        _extra_field(extra),
    )


def content_hash(seq: int, ts_ms: int, q: str, m: CMeasurements) -> str:
    """Return the sample's content hash: equal for a redelivery or a ``hist`` replay.

    BLAKE2b-128 of the canonical MessagePack of ``[seq, ts, q, m]`` (measurements
    in the struct's field order, absent keys omitted, ``null`` kept, numbers of float
    fields as float64). Independent of ``hist``, ``sid`` and of the message's
    formatting. MessagePack rather than JSON: a third of the encoding time.
    """
    return _blake2b(_PACK((seq, ts_ms, q, m)), digest_size=16).hexdigest()


def content_hash_v2(seq: int, ts_ms: int, q: str, m: CMeasurements) -> str:
    """Return the previous content hash (canonical JSON) rows stored before carry."""
    body = _ENCODE((seq, ts_ms, q, m))
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def content_hash_of(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """:func:`content_hash` of measurements given as a mapping (validated values)."""
    return content_hash(seq, ts_ms, q, msgspec.convert(m, CMeasurements))


def content_hash_v2_of(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """:func:`content_hash_v2` of measurements given as a mapping."""
    return content_hash_v2(seq, ts_ms, q, msgspec.convert(m, CMeasurements))
