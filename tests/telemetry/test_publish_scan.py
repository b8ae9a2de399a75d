"""The ingest client's PUBLISH scan: only complete plain QoS 1 packets, in order.

``_IngestClient._scan_publishes`` slices PUBLISH packets out of the read buffer
instead of paho's per-packet reads; anything it does not take must stay in the buffer
for paho, byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest

from telemetry.ingest import BrokerAddress, _BufferedSocket, _IngestClient, make_client


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(
    topic: str,
    payload: bytes,
    mid: int,
    *,
    qos: int = 1,
    dup: bool = False,
    retain: bool = False,
    v5: bool = True,
    props: bytes = b"\x00",
) -> bytes:
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += props
    body += payload
    header = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return bytes([header]) + _varint(len(body)) + body


class _Idle:
    def recv(self, _n: int) -> bytes:  # never reached: the scan reads the buffer
        raise AssertionError


def scan(data: bytes, *, v5: bool = True, limit: int = 256) -> tuple[list[Any], int]:
    client = make_client(
        BrokerAddress("127.0.0.1", 1883),
        client_id="scan-test",
        protocol="5" if v5 else "3.1.1",
        manual_ack=True,
        buffered=True,
    )
    assert isinstance(client, _IngestClient)
    got: list[Any] = []
    client.on_fast_publish = lambda *a: got.append(a)
    sock = _BufferedSocket(_Idle())
    sock._buf, sock._pos = data, 0
    taken = client._scan_publishes(sock, limit)
    assert taken == len(got)
    return got, sock._pos


T = "bess/v1/ercot/site-01/up/tlm/bank1"


@pytest.mark.parametrize("v5", [True, False])
def test_scan_takes_complete_qos1_publishes_in_order(v5: bool) -> None:
    big = b"x" * 20_000  # a 3-byte remaining length
    data = (
        publish(T, b"one", 1, v5=v5)
        + publish(T, big, 2, dup=True, v5=v5)
        + publish(T, b"three", 65535, retain=True, v5=v5)
    )
    got, pos = scan(data, v5=v5)
    assert got == [
        (1, T, b"one", False, False),
        (2, T, big, True, False),
        (65535, T, b"three", False, True),
    ]
    assert pos == len(data)


@pytest.mark.parametrize(
    ("name", "stopper"),
    [
        ("QoS 0", publish(T, b"q0", 0, qos=0)),
        ("QoS 2", publish(T, b"q2", 9, qos=2)),
        ("properties", publish(T, b"p", 9, props=b"\x02\x01\x01")),
        ("$SYS topic", publish("$SYS/broker/x", b"1", 9)),
        ("packet id 0", publish(T, b"z", 0)),
        ("PUBACK", b"\x40\x02\x00\x07"),
        ("PINGRESP", b"\xd0\x00"),
        (
            "bad UTF-8 topic",
            publish(T, b"u", 9)[:4] + b"\xff" + publish(T, b"u", 9)[5:],
        ),
    ],
)
def test_scan_leaves_any_other_packet_to_paho(name: str, stopper: bytes) -> None:
    first = publish(T, b"first", 1)
    after = publish(T, b"after", 2)
    got, pos = scan(first + stopper + after)
    assert [g[2] for g in got] == [b"first"], name
    assert pos == len(first)  # paho reads the rest, the stopper first


@pytest.mark.parametrize("cut", [1, 2, 3, 10, -1])
def test_scan_leaves_a_packet_split_across_reads(cut: int) -> None:
    first = publish(T, b"first", 1)
    second = publish(T, b"y" * 300, 2)  # a 2-byte remaining length
    got, pos = scan(first + second[:cut])
    assert [g[0] for g in got] == [1]
    assert pos == len(first)


def test_scan_stops_at_its_limit_and_while_paho_holds_a_partial_packet() -> None:
    data = b"".join(publish(T, b"%d" % i, i + 1) for i in range(5))
    got, pos = scan(data, limit=3)
    assert [g[0] for g in got] == [1, 2, 3]
    client = make_client(
        BrokerAddress("127.0.0.1", 1883), manual_ack=True, buffered=True
    )
    assert isinstance(client, _IngestClient)
    client.on_fast_publish = lambda *_a: pytest.fail("paho is mid-packet")
    client._in_packet["command"] = 0x32
    sock = _BufferedSocket(_Idle())
    sock._buf, sock._pos = data[pos:], 0
    assert client._scan_publishes(sock, 256) == 0
    assert sock._pos == 0
