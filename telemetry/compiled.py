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
from collections.abc import Mapping
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
_to_builtins = msgspec.to_builtins


def m_builtins(m: CMeasurements) -> dict[str, Any]:
    """Return the measurements a sample sent as a dict (``None`` kept, absent dropped)."""
    out: dict[str, Any] = _to_builtins(m)
    return out


def content_hash(seq: int, ts_ms: int, q: str, m: CMeasurements) -> str:
    """Return the sample's content hash: equal for a redelivery or a ``hist`` replay.

    BLAKE2b-128 of the canonical JSON of ``[seq, ts, q, m]`` (measurements in the
    struct's field order, absent keys omitted, ``null`` kept, numbers of float fields
    as floats). Independent of ``hist``, ``sid`` and of the message's formatting.
    """
    body = _ENCODE((seq, ts_ms, q, m))
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def content_hash_of(seq: int, ts_ms: int, q: str, m: Mapping[str, Any]) -> str:
    """:func:`content_hash` of measurements given as a mapping (validated values)."""
    return content_hash(seq, ts_ms, q, msgspec.convert(m, CMeasurements))
