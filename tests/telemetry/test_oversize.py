"""Message size (spec 2 "Size") and the batched live form (spec 2, version 1.1).

A gateway never publishes a message over its topic's limit: Mosquitto would drop its
connection and paho would resend the message on every reconnect, blocking the outbox.
Backfills are split to fit 500 samples and 256 KiB; the broker's limit matches the spec.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.store.engine import make_engine
from fleet.store.migrate import upgrade
from fleet.store.sites import save_fleet
from telemetry.payloads import (
    MAX_HIST_BYTES,
    MAX_LIVE_BATCH_BYTES,
    MAX_TLM_BYTES,
    pack_samples,
)
from telemetry.registry import site_spec_from
from telemetry.simulator import SimOptions, SiteGateway
from telemetry.validation import Context, validate_message
from tests.conftest import REPO_ROOT, Broker
from tests.factories import make_fleet
from tests.telemetry.helpers import (
    IngestProcess,
    bank_m,
    count,
    encode,
    now_ms,
    registry,
    rows,
    topic,
    wait_until,
)

NOW = now_ms()


def _sample(seq: int, pad: int = 0) -> dict[str, Any]:
    m = bank_m()
    if pad:
        m["cha_st"] = "CHARGING"
        m["pad"] = "x" * pad  # not a measurement: only for the packer's byte count
    return {"seq": seq, "ts": NOW - 60_000 + seq, "q": "good", "m": m}


def test_pack_samples_splits_by_bytes_and_count_and_drops_lone_giant() -> None:
    head = {"v": 1, "site": "site-01", "dev": "bank1", "sid": 1}
    samples = [_sample(i, pad=2000 if i != 7 else 9000) for i in range(20)]
    messages, dropped = pack_samples(head, samples, max_bytes=8192, max_samples=3)
    assert [d["seq"] for d in dropped] == [7]
    seqs: list[int] = []
    for payload, n in messages:
        assert len(payload) <= 8192
        body = json.loads(payload)
        assert {k: body[k] for k in head} == head
        assert len(body["samples"]) == n <= 3
        seqs += [s["seq"] for s in body["samples"]]
    assert seqs == [i for i in range(20) if i != 7]


def _batch(samples: list[dict[str, Any]]) -> bytes:
    return encode(
        {"v": 1, "site": "site-01", "dev": "bank1", "sid": 9, "samples": samples}
    )


def test_validate_batched_live_stores_good_and_quarantines_bad_sample_alone() -> None:
    bad = _sample(2)
    bad["m"] = {**bad["m"], "cha_st": "WARP"}
    out = validate_message(
        topic("site-01", "tlm", "bank1"),
        _batch([_sample(1), bad, _sample(3)]),
        Context(registry(), NOW),
    )
    assert [(s.seq, s.hist, s.sid) for s in out.samples] == [
        (1, False, 9),
        (3, False, 9),
    ]
    (q,) = out.quarantined
    assert q.reason == "schema"
    assert q.detail.startswith("samples[1] seq=2: m.cha_st")
    assert [s["seq"] for s in json.loads(q.payload)["samples"]] == [2]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (_batch([_sample(i) for i in range(61)]), "schema"),
        (_batch([_sample(1, pad=MAX_LIVE_BATCH_BYTES)]), "oversize"),
        (
            encode(
                {
                    "v": 1,
                    "site": "site-01",
                    "dev": "bank1",
                    "sid": 1,
                    **_sample(1, pad=MAX_TLM_BYTES),
                }
            ),
            "oversize",
        ),
    ],
    ids=["61 samples", "batch over 64 KiB", "one-sample tlm over 8 KiB"],
)
def test_validate_quarantines_tlm_when_over_its_form_limit(
    payload: bytes, expected: str
) -> None:
    out = validate_message(
        topic("site-01", "tlm", "bank1"), payload, Context(registry(), NOW)
    )
    assert out.samples == ()
    assert [q.reason for q in out.quarantined] == [expected]


def test_shipped_broker_limit_matches_the_largest_payload_limit() -> None:
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    (limit,) = re.findall(r"^message_size_limit (\d+)$", conf, re.MULTILINE)
    assert int(limit) == MAX_HIST_BYTES


# -- real broker, real ingest ------------------------------------------------------


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    save_fleet(engine, make_fleet(1))
    engine.dispose()
    return url


@pytest.fixture
def ingest(
    store_url: str, mosquitto: Broker, tmp_path: Path
) -> Iterator[IngestProcess]:
    proc = IngestProcess(
        store_url,
        mosquitto.url,
        tmp_path / "ingest.log",
        client_id=f"ingest-{tmp_path.name[-20:]}",
        extra=("--reorder-timeout-s", "1"),
    ).start()
    yield proc
    proc.stop()


@pytest.mark.integration
@pytest.mark.xfail(
    strict=False,
    reason="quarantines 2-26 messages when the whole suite runs on a loaded machine; "
    "passes alone (open, issue 17)",
)
def test_gateway_splits_big_backfill_and_batches_live_when_broker_limits_size(
    store_url: str, mosquitto: Broker, ingest: IngestProcess
) -> None:
    spec = site_spec_from(make_fleet(1).sites[0])
    lost = SimOptions(seed=1, uplink_loss=1.0)
    gw = SiteGateway(spec, mosquitto.url, lost, random.Random(1))
    gw.connect()
    try:
        wait_until(gw.client.is_connected, 15, "gateway up")
        t = now_ms() - 700_000
        # 700 samples per device lost on the uplink, kept in the history buffer:
        # their backfill is ~400 KiB per device, more than one hist message may hold
        for i in range(700):
            gw.step(1.0, t + i * 1000)
            gw.publish_samples(t + i * 1000)
        gw.options = dataclasses.replace(lost, uplink_loss=0.0, live_batch=12)
        for i in range(700, 760):
            gw.step(1.0, t + i * 1000)
            gw.publish_samples(t + i * 1000)
        gw.flush_live()
        total = 760 * len(gw.devices)

        def served() -> bool:
            gw.serve_backfill(50)
            return count(store_url, "SELECT count(*) FROM tlm_measurements") >= total

        wait_until(served, 60, f"all {total} samples")
        assert gw.client.is_connected()
        assert gw.acked == gw.published == 60 * len(gw.devices)
        assert rows(
            store_url,
            "SELECT hist, count(*) FROM tlm_measurements GROUP BY hist ORDER BY hist",
        ) == [
            (0, 60 * len(gw.devices)),
            (1, 700 * len(gw.devices)),
        ]
        assert count(store_url, "SELECT count(*) FROM tlm_quarantine") == 0
        assert gw.dropped_oversize == 0
    finally:
        gw.disconnect()
