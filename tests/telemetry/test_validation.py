"""Validation of uplink messages: hard failures to quarantine, soft findings to flags."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry import topics
from telemetry.errors import TelemetryInputError
from telemetry.payloads import PayloadError, SetpointPayload, loads_strict
from telemetry.validation import REASONS, Context, Flag, validate_message
from tests.telemetry.helpers import DROP, bank_m, encode, now_ms, registry, tlm, topic

NOW = now_ms()


def ctx() -> Context:
    return Context(registry(), NOW)


def run(body: Any, t: str | None = None) -> Any:
    raw = body if isinstance(body, bytes) else encode(body)
    return validate_message(t or topic("site-01", "tlm", "bank1"), raw, ctx())


def reason(body: Any, t: str | None = None) -> str:
    out = run(body, t)
    assert not out.samples, out
    assert len(out.quarantined) == 1
    return str(out.quarantined[0].reason)


def test_topic_parse_returns_levels_when_tlm_topic() -> None:
    parsed = topics.parse_topic("bess/v1/ercot/tx-odessa-01/up/tlm/bank1")
    assert parsed == topics.Topic("ercot", "tx-odessa-01", "up", "tlm", "bank1")
    assert str(parsed) == "bess/v1/ercot/tx-odessa-01/up/tlm/bank1"


@pytest.mark.parametrize(
    "bad",
    [
        "bess/v1/ercot/Site/up/tlm/bank1",
        "bess/v2/ercot/s1/up/tlm/bank1",
        "bess/v1/ercot/s1/up/tlm",
        "bess/v1/ercot/s1/up/birth/x",
        "bess/v1/ercot/s1/sideways/tlm/bank1",
    ],
)
def test_topic_parse_returns_none_when_outside_grammar(bad: str) -> None:
    assert topics.parse_topic(bad) is None


def test_topic_builder_raises_naming_field_when_id_invalid() -> None:
    with pytest.raises(TelemetryInputError, match="site='Bad Site'"):
        topics.up("ercot", "Bad Site", "birth")


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_loads_strict_rejects_nan_inf_when_present(text: str) -> None:
    with pytest.raises(PayloadError) as err:
        loads_strict('{"x": ' + text + "}")
    assert err.value.reason == "nan_inf"


def test_validate_stores_sample_when_payload_valid() -> None:
    body = tlm(ts=NOW - 1000, seq=7, sid=3)
    out = run(body)
    assert out.quarantined == ()
    (sample,) = out.samples
    assert (sample.site_id, sample.dev_id, sample.ts_ms, sample.seq, sample.sid) == (
        "site-01",
        "bank1",
        NOW - 1000,
        7,
        3,
    )
    assert sample.flags == 0
    assert sample.m["soc_pct"] == 50.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "bad_json"),
        (b'{"v":1,"site":"site-01","x":NaN}', "nan_inf"),
        (b"\xff\xfe", "bad_json"),
        (b"[1,2]", "schema"),
        (tlm(v=2), "unknown_version"),
        (tlm(v="1"), "schema"),
        (tlm(site="site-02"), "topic_mismatch"),
        (tlm(dev="bank2"), "topic_mismatch"),
        (tlm(seq=-1), "schema"),
        (tlm(seq=1.5), "schema"),
        (tlm(seq=True), "schema"),
        (tlm(q="great"), "schema"),
        (tlm(extra_key=1), "schema"),
        (tlm(m=bank_m(soc_pct=DROP)), "schema"),
        (tlm(m=bank_m(soc_pct="50")), "schema"),
        (tlm(m=bank_m(bogus_w=1.0)), "schema"),
        (tlm(m=bank_m(soc_pct=101.5)), "range_hard"),
        (tlm(m=bank_m(soh_pct=-2.0)), "range_hard"),
        (tlm(m=bank_m(cell_v_max_v=4.6)), "range_hard"),
        (tlm(m=bank_m(cell_v_min_v=0.4)), "range_hard"),
        (tlm(m=bank_m(cell_v_min_v=3.32, cell_v_max_v=3.30)), "range_hard"),
        (tlm(m=bank_m(cell_v_avg_v=3.5)), "range_hard"),
        (tlm(m=bank_m(cell_t_min_c=30.0, cell_t_max_c=20.0)), "range_hard"),
        (tlm(m=bank_m(cell_t_max_c=101.0)), "range_hard"),
        (tlm(m=bank_m(v_dc_v=2000.0)), "range_hard"),
        (tlm(m=bank_m(v_dc_v=-1.0)), "range_hard"),
        (tlm(m=bank_m(p_dc_w=16_000_000.0)), "range_hard"),
        (tlm(ts=NOW + 121_000), "future_ts"),
        (tlm(ts=NOW - 36 * 86_400_000), "too_old"),
    ],
)
def test_validate_quarantines_with_reason_when_hard_failure(
    body: Any, expected: str
) -> None:
    assert reason(body) == expected


def test_validate_quarantines_unknown_site_when_not_in_registry() -> None:
    body = tlm(site="site-99", ts=NOW)
    assert reason(body, topic("site-99", "tlm", "bank1")) == "unknown_site"


def test_validate_quarantines_topic_mismatch_when_group_differs() -> None:
    body = tlm(ts=NOW)
    assert (
        reason(body, topic("site-01", "tlm", "bank1", group="caiso"))
        == "topic_mismatch"
    )


def test_validate_quarantines_oversize_when_tlm_above_8_kib() -> None:
    body = tlm(ts=NOW, m=bank_m(state="x" * 9000))
    assert reason(body) == "oversize"


def test_validate_quarantines_schema_when_topic_unparseable() -> None:
    assert reason(tlm(ts=NOW), "bess/v1/ercot/site-01/up/nope") == "schema"


@pytest.mark.parametrize(
    ("m", "flag"),
    [
        (bank_m(cell_v_max_v=3.7), Flag.CELL_V_HIGH),
        (bank_m(cell_v_min_v=2.4), Flag.CELL_V_LOW),
        (bank_m(cell_v_min_v=3.15, cell_v_max_v=3.30), Flag.CELL_SPREAD),
        (bank_m(p_dc_w=-2e6, i_dc_a=-1456.9, cell_t_min_c=-5.0), Flag.CHARGE_TEMP),
        (bank_m(cell_t_max_c=65.0), Flag.DISCHARGE_TEMP),
        (bank_m(soc_pct=98.0), Flag.SOC_NAMEPLATE),
        (bank_m(i_dc_a=100.0), Flag.PVI_MISMATCH),
        (bank_m(loc_rem="LOCAL"), Flag.LOCAL),
        (bank_m(soc_pct=100.5), Flag.SOC_CLAMPED),
    ],
)
def test_validate_stores_with_flag_when_soft_finding(
    m: dict[str, Any], flag: Flag
) -> None:
    out = run(tlm(ts=NOW - 1000, m=m))
    assert out.quarantined == ()
    assert out.samples[0].flags & flag


def test_validate_clamps_soc_when_slightly_above_100() -> None:
    out = run(tlm(ts=NOW - 1000, m=bank_m(soc_pct=100.5)))
    assert out.samples[0].m["soc_pct"] == 100.0


def test_validate_flags_late_when_live_sample_older_than_15_minutes() -> None:
    out = run(tlm(ts=NOW - 16 * 60_000))
    assert out.samples[0].flags & Flag.LATE
    out = run(tlm(ts=NOW - 16 * 60_000, hist=True))
    assert not out.samples[0].flags & Flag.LATE


def test_validate_hist_keeps_good_and_quarantines_bad_samples_when_mixed() -> None:
    body = {
        "v": 1,
        "site": "site-01",
        "dev": "bank1",
        "sid": 2,
        "samples": [
            {"seq": 1, "ts": NOW - 3000, "m": bank_m()},
            {"seq": 2, "ts": NOW - 2000, "m": bank_m(cell_v_max_v=9.0)},
            {"seq": 3, "ts": NOW - 1000, "q": "bad", "m": bank_m(soc_pct=None)},
        ],
    }
    out = run(body, topic("site-01", "hist", "bank1"))
    assert [s.seq for s in out.samples] == [1, 3]
    assert all(s.hist for s in out.samples)
    (bad,) = out.quarantined
    assert bad.reason == "range_hard"
    assert "samples[1] seq=2" in bad.detail
    assert json.loads(bad.payload)["samples"][0]["seq"] == 2


def test_payload_hash_equal_when_tlm_replayed_as_hist() -> None:
    live = run(tlm(ts=NOW - 1000, seq=5, sid=1)).samples[0]
    body = {
        "v": 1,
        "site": "site-01",
        "dev": "bank1",
        "sid": 99,
        "samples": [{"seq": 5, "ts": NOW - 1000, "m": bank_m()}],
    }
    replay = run(body, topic("site-01", "hist", "bank1")).samples[0]
    assert replay.payload_hash == live.payload_hash


def test_validate_parses_birth_state_ack_when_valid() -> None:
    state = run({"online": False, "sid": 5, "ts": NOW}, topic("site-01", "state"))
    assert state.state is not None
    assert state.state.online is False
    ack = run({"cmd_id": "c1", "status": "applied", "ts": NOW}, topic("site-01", "ack"))
    assert ack.ack is not None
    assert ack.ack.status == "applied"


def test_setpoint_payload_raises_naming_field_when_window_inverted() -> None:
    with pytest.raises(ValueError, match="expires_at"):
        SetpointPayload(
            cmd_id="x",
            site="site-01",
            issued_ts=1,
            valid_from=10,
            expires_at=5,
            p_ac_w_setpoint=0.0,
            ramp_w_per_s=1.0,
            soc_min_pct=5,
            soc_max_pct=95,
        )


# --- property test: no payload makes the validator raise, every outcome accounted ----

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)
M_KEYS = [
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
    "loc_rem",
    "evt1",
]
boundary_numbers = st.one_of(
    st.sampled_from(
        [-1.0, -0.0, 0.0, 0.5, 2.5, 3.65, 4.5, 4.5001, 100.0, 101.0, 1e308]
    ),
    st.floats(min_value=-1e7, max_value=1e7, allow_nan=False),
    st.integers(min_value=-(2**64), max_value=2**64),
)
hostile_m = st.dictionaries(
    st.sampled_from(M_KEYS), st.one_of(boundary_numbers, json_values), max_size=12
)
hostile_tlm = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), json_values),
        "site": st.sampled_from(["site-01", "site-02", "SITE", ""]),
        "dev": st.sampled_from(["bank1", "pcs1", "bank2"]),
        "sid": st.one_of(st.integers(min_value=-5, max_value=2**64), json_values),
        "seq": st.one_of(st.integers(min_value=-5, max_value=2**64), json_values),
        "ts": st.one_of(
            st.integers(min_value=NOW - 40 * 86_400_000, max_value=NOW + 200_000),
            json_values,
        ),
        "hist": st.one_of(st.booleans(), json_values),
        "q": st.sampled_from(["good", "bad", "uncertain", "meh"]),
        "m": st.one_of(hostile_m, json_values),
    },
)
raw_bytes = st.one_of(
    st.binary(max_size=200),
    hostile_tlm.map(lambda d: json.dumps(d).encode()),
    hostile_tlm.map(lambda d: json.dumps(d).replace("1", "NaN", 1).encode()),
    st.just(b'{"v":1}' * 2000),
)
topics_st = st.sampled_from(
    [
        topic("site-01", "tlm", "bank1"),
        topic("site-01", "hist", "bank1"),
        topic("site-01", "birth"),
        topic("site-01", "state"),
        topic("site-01", "evt"),
        topic("site-01", "ack"),
        topic("site-09", "tlm", "bank1"),
        "bess/v1/ercot/site-01/up/tlm",
        "random/topic",
    ]
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=topics_st, raw=raw_bytes)
def test_validator_never_raises_and_accounts_every_message_when_fuzzed(
    t: str, raw: bytes
) -> None:
    out = validate_message(t, raw, ctx())
    for q in out.quarantined:
        assert q.reason in REASONS
        assert q.payload == raw or "/hist/" in t  # the raw bytes are kept
    handled = bool(
        out.samples or out.quarantined or out.birth or out.state or out.evt or out.ack
    )
    assert handled, (t, raw)
    if out.samples:
        # a stored sample is within the hard limits
        for s in out.samples:
            assert s.site_id == "site-01"
            soc = s.m.get("soc_pct")
            assert soc is None or 0 <= soc <= 100


@settings(max_examples=200, deadline=None)
@given(
    soc=st.floats(min_value=0, max_value=100),
    v_lo=st.floats(min_value=0.5, max_value=4.5),
    spread=st.floats(min_value=0, max_value=0.5),
    t_lo=st.floats(min_value=-40, max_value=60),
    p=st.floats(min_value=-15e6, max_value=15e6),
)
def test_validator_stores_sample_when_within_hard_limits(
    soc: float, v_lo: float, spread: float, t_lo: float, p: float
) -> None:
    v_hi = min(4.5, v_lo + spread)
    m = bank_m(
        soc_pct=soc,
        cell_v_min_v=v_lo,
        cell_v_max_v=v_hi,
        cell_t_min_c=t_lo,
        cell_t_max_c=t_lo + 5,
        p_dc_w=p,
    )
    out = validate_message(
        topic("site-01", "tlm", "bank1"), encode(tlm(ts=NOW - 1000, m=m)), ctx()
    )
    assert out.quarantined == ()
    assert len(out.samples) == 1


def test_helpers_clock_is_sane() -> None:
    assert now_ms() > NOW - 10**11
