"""The compiled (msgspec) decode path: same outcomes as the pydantic reference path."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa

import telemetry.validation as validation
from fleet.store.sites import save_fleet
from fleet.store.telemetry import write_samples
from telemetry.topics import parse_topic
from telemetry.validation import Context, Outcome, legacy_payload_hash, validate_message
from tests.factories import make_fleet
from tests.telemetry.helpers import bank_m, encode, now_ms, registry, tlm, topic

NOW = now_ms()
NUL = "\u0000"


def ctx() -> Context:
    return Context(registry(), NOW)


def batch(samples: list[dict[str, Any]], **head: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "site": "site-01",
        "dev": "bank1",
        "sid": 3,
        **head,
        "samples": samples,
    }


def live(n: int = 5, **m: Any) -> dict[str, Any]:
    return batch(
        [
            {"seq": 10 + i, "ts": NOW - 10_000 + i * 1000, "m": bank_m(**m)}
            for i in range(n)
        ]
    )


def both(
    t: str, raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, Outcome]:
    fast = validate_message(t, raw, ctx())
    with monkeypatch.context() as mp:
        mp.setattr(validation, "_fast_tlm", lambda *_a: None)
        mp.setattr(validation, "_fast_batch", lambda *_a: None)
        slow = validate_message(t, raw, ctx())
    return fast, slow


def summary(out: Outcome) -> tuple[Any, ...]:
    return (
        [
            (
                s.site_id,
                s.dev_id,
                s.ts_ms,
                s.seq,
                s.sid,
                s.hist,
                s.q,
                s.flags,
                s.payload_hash,
                s.m,
            )
            for s in out.samples
        ],
        [(q.reason, q.detail, q.payload) for q in out.quarantined],
    )


def mutations() -> list[tuple[str, dict[str, Any]]]:
    """Valid and invalid batched live messages (one field changed at a time)."""
    base = live(3)
    out: list[tuple[str, dict[str, Any]]] = [("valid", base)]

    def sample_m(name: str, key: str, value: Any) -> None:
        body = copy.deepcopy(base)
        body["samples"][1]["m"][key] = value
        out.append((name, body))

    def sample_key(name: str, key: str, value: Any) -> None:
        body = copy.deepcopy(base)
        body["samples"][1][key] = value
        out.append((name, body))

    def head(name: str, key: str, value: Any) -> None:
        body = copy.deepcopy(base)
        body[key] = value
        out.append((name, body))

    sample_m("unknown enum", "cha_st", "BOGUS")
    sample_m("NUL in enum", "cha_st", "CHARGING" + NUL)
    sample_m("NUL in state", "state", NUL)
    sample_m("long enum", "state", "C" * 300)
    sample_m("bool as float", "soc_pct", True)
    sample_m("string as float", "p_dc_w", "1")
    sample_m("int as float", "p_dc_w", 2_000_000)
    sample_m("float as int", "evt1", 1.0)
    sample_m("u32 overflow", "evt1", 2**32)
    sample_m("negative count", "n_cyc", -1)
    sample_m("unknown key", "bogus_w", 1.0)
    sample_m("soc out of range", "soc_pct", 150.0)
    sample_m("soc clamped", "soc_pct", 100.5)
    sample_m("cell v hard", "cell_v_max_v", 9.0)
    sample_m("cell v inverted", "cell_v_min_v", 3.5)
    sample_m("p over rating", "p_dc_w", 9e9)
    sample_m("null required", "soc_pct", None)
    sample_m("local", "loc_rem", "LOCAL")
    sample_m("spread", "cell_v_max_v", 3.64)
    body = copy.deepcopy(base)
    del body["samples"][1]["m"]["soc_pct"]
    out.append(("missing required", body))
    sample_key("seq u64 max", "seq", 2**64 - 1)
    sample_key("seq over u64", "seq", 2**64)
    sample_key("seq negative", "seq", -1)
    sample_key("seq bool", "seq", True)
    sample_key("ts negative", "ts", -5)
    sample_key("ts future", "ts", NOW + 3_600_000)
    sample_key("q unknown", "q", "great")
    sample_key("extra key", "x", 1)
    head("sid u64", "sid", 2**64 - 1)
    head("sid over u64", "sid", 2**64)
    head("v 2", "v", 2)
    head("site mismatch", "site", "site-02")
    head("dev mismatch", "dev", "bank2")
    head("hist true", "hist", True)
    head("no samples", "samples", [])
    head("61 samples", "samples", [base["samples"][0]] * 61)
    head("extra head", "extra", 1)
    return out


@pytest.mark.parametrize(("name", "body"), mutations(), ids=[n for n, _ in mutations()])
def test_compiled_batch_outcome_equals_reference_when_mutated(
    name: str, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = both(topic("site-01", "tlm", "bank1"), encode(body), monkeypatch)
    assert summary(fast) == summary(slow), name


@pytest.mark.parametrize(
    "raw",
    [
        encode(tlm(ts=NOW - 1000)),
        encode(tlm(ts=NOW - 1000, m={**bank_m(), "cha_st": "BOGUS"})),
        encode(tlm(ts=NOW - 1000, m={**bank_m(), "state": "CONNECTED" + NUL})),
        encode(tlm(ts=NOW - 1000, seq=2**64 - 1, sid=2**64 - 1)),
        encode(tlm(ts=NOW - 1000, seq=2**64)),
        encode(tlm(ts=-1)),
        encode(tlm(ts=NOW - 1000, hist=True)),
        encode(tlm(ts=NOW - 1000, m=bank_m(soc_pct=-0.5))),
        b'{"v":1,"site":"site-01","dev":"bank1","sid":1,"seq":1,"ts":1,"m":{"soc_pct":NaN}}',
        b'{"v":1,"site":"site-01","dev":"bank1","sid":1,"seq":1,"ts":1,"m":{"soc_pct":1e999}}',
        encode(tlm(ts=NOW - 1000))[:-1] + b" " * 9000 + b"}",
    ],
)
def test_compiled_tlm_outcome_equals_reference(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = both(topic("site-01", "tlm", "bank1"), raw, monkeypatch)
    assert summary(fast) == summary(slow)


def test_batched_bad_field_quarantined_naming_field_and_neighbours_stored(
    engine: sa.Engine,
) -> None:
    with engine.begin() as conn:
        save_fleet(conn, make_fleet(3))
    body = live(5)
    body["samples"][2]["m"]["cha_st"] = "CHARGING" + NUL
    out = validate_message(topic("site-01", "tlm", "bank1"), encode(body), ctx())
    assert [s.seq for s in out.samples] == [10, 11, 13, 14]
    (bad,) = out.quarantined
    assert bad.reason == "schema"
    assert "samples[2] seq=12" in bad.detail
    assert "cha_st" in bad.detail
    assert json.loads(bad.payload)["samples"][0]["seq"] == 12
    with engine.begin() as conn:
        result = write_samples(
            conn,
            samples=list(out.samples),
            quarantined=list(out.quarantined),
            received_at_ms=NOW,
        )
    assert result.inserted == 4
    with engine.connect() as conn:
        seqs = conn.execute(
            sa.text("SELECT seq FROM tlm_measurements ORDER BY seq")
        ).scalars()
        assert list(seqs) == [10, 11, 13, 14]
        reasons = conn.execute(sa.text("SELECT reason FROM tlm_quarantine")).scalars()
        assert list(reasons) == ["schema"]


def test_row_with_legacy_hash_is_a_duplicate_not_a_conflict(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        save_fleet(conn, make_fleet(3))
    (sample,) = validate_message(
        topic("site-01", "tlm", "bank1"), encode(tlm(ts=NOW - 1000)), ctx()
    ).samples
    with engine.begin() as conn:
        write_samples(conn, samples=[sample], quarantined=[], received_at_ms=NOW)
        old = legacy_payload_hash(sample.seq, sample.ts_ms, sample.q, sample.m)
        conn.execute(
            sa.text("UPDATE tlm_measurements SET payload_hash = :h"), {"h": old}
        )
    with engine.begin() as conn:
        again = write_samples(
            conn, samples=[sample], quarantined=[], received_at_ms=NOW
        )
    assert (again.inserted, again.duplicates, again.conflicts) == (0, 1, 0)


def test_compiled_path_taken_when_messages_valid() -> None:
    parsed = parse_topic(topic("site-01", "tlm", "bank1"))
    assert parsed is not None
    got = validation._fast_batch(parsed, encode(live(5)), ctx())
    assert got is not None
    assert len(got.samples) == 5
    one = validation._fast_tlm(parsed, encode(tlm(ts=NOW - 1000)), ctx())
    assert one is not None
    assert len(one.samples) == 1
