"""Run the ingest worker: MQTT QoS 1 in, validate, commit, then ack in receive order.

The ack strategy is spec section 8: a persistent MQTT 5 session (3.1.1 fallback),
``manual_ack=True``, a validator thread that prepares the next batches while one writer
thread commits a batch (good rows, quarantine rows, gap tracker) in one transaction and
only then acknowledges every message of that batch in the order it was received.

A store that refuses a batch's data (a value it cannot hold, a constraint) never holds
the stream: the batch is split until the offending message is alone, that message is
quarantined as ``store_rejected`` with the database's message, the rest is committed and
everything is acknowledged (spec section 6). On an outage (connection lost, disk full,
locked) nothing is acknowledged; the batch is retried with backoff and, if the outage
lasts, the worker disconnects so the broker keeps the backlog in the session.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from telemetry.errors import TelemetryInputError
from telemetry.gaps import BackfillRequest, GapTracker, PermanentGap, Track
from telemetry.payloads import (
    AckPayload,
    BirthPayload,
    CtlPayload,
    EvtPayload,
    StatePayload,
    dumps,
)
from telemetry.registry import SiteRegistry
from telemetry.topics import down, ingest_subscription, site_from_topic
from telemetry.validation import (
    Context,
    Limits,
    Outcome,
    Quarantined,
    Sample,
    limits_from_birth,
    validate_message,
)

logger = logging.getLogger(__name__)

SYS_DROPPED = "$SYS/broker/publish/messages/dropped"
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH").pack
SESSION_EXPIRY_S = 7 * 86_400
"""Session expiry of a lone worker: the broker keeps its backlog through any outage."""
SHARE_SESSION_EXPIRY_S = 300
"""Session expiry of a ``--share`` worker: the broker does not re-route a dead member's
messages, so a member that never returns (scale-down, renamed pod) must leave the group
soon; what its session held comes back through backfill from the gateways' history."""


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """Return the first line of an error's message, without control characters."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig)
    text = "".join(ch if ch >= " " else " " for ch in text)
    return f"{type(orig).__name__}: {text}"[:limit]


GC_GEN0_THRESHOLD = 50_000
"""Allocations between young-generation collections in an ingest process (Python's
default is 700)."""


def tune_gc_for_ingest() -> None:
    """Tune the garbage collector of a process that runs an ingest worker.

    A batch of 500 batched messages allocates some 100,000 short-lived, acyclic
    objects (decoded samples, rows), freed by reference counting; with the default
    thresholds the collector scans them every 700 allocations and the long-lived
    modules' objects again and again: 45 % of the batched form's validation
    time (``bench/ingest_stages.py --gc default``). Objects alive at start are frozen out of
    collection and young collections run every 50,000 allocations.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def now_ms() -> int:
    """Return the wall-clock time in ms since the Unix epoch (UTC)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens and how to log in."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user:pass@]host[:port]`` or ``mqtts://…`` into an address.

    Raises
    ------
    TelemetryInputError
        For another scheme or a missing host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        msg = f"mqtt_url={url!r}: scheme must be mqtt:// or mqtts://"
        raise TelemetryInputError(msg)
    if not parts.hostname:
        msg = f"mqtt_url={url!r}: missing host"
        raise TelemetryInputError(msg)
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=parts.username,
        password=parts.password,
    )


def make_client(
    address: BrokerAddress,
    *,
    client_id: str = "",
    protocol: str = "5",
    manual_ack: bool = False,
    username: str | None = None,
    persistent: bool = True,
    buffered: bool = False,
) -> mqtt.Client:
    """Return a paho 2 client for ``address``: its credentials and TLS applied.

    Parameters
    ----------
    address
        Where the broker listens (:func:`parse_mqtt_url`).
    client_id
        MQTT client id (``""``: the broker assigns one).
    protocol
        ``"5"`` (MQTT 5) or ``"3.1.1"`` (persistent session via ``clean_session=False``).
    manual_ack
        Acknowledge QoS 1 messages only when the caller says so.
    username
        Login name when the URL carries none (a gateway logs in as its site id).
    persistent
        For MQTT 3.1.1: keep the session across reconnects (``clean_session=False``);
        MQTT 5 sets this at connect time (``clean_start``).
    buffered
        Read the socket in 64 KiB chunks (the ingest's high-rate subscriber).
    """
    v5 = protocol == "5"
    cls = _IngestClient if buffered else mqtt.Client
    client = cls(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
    )
    user = address.username or username
    if user:
        client.username_pw_set(user, address.password)
    if address.tls:
        client.tls_set()
    return client


class _BufferedSocket:
    """A socket that reads up to 64 KiB per ``recv`` and serves paho from the buffer.

    paho 2 reads each packet's fixed header one byte per ``recv`` call and waits in
    ``select`` once per packet; at tens of thousands of QoS 1 messages per second those
    system calls are a large part of the ingest's CPU. ``pending()`` (which paho also
    asks of TLS sockets) tells its loop that buffered bytes are ready without a
    ``select`` wait. Everything else is the wrapped socket's.
    """

    _CHUNK = 65_536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Return up to ``bufsize`` bytes, from the buffer when it holds any."""
        if self._pos >= len(self._buf):
            data = self._sock.recv(max(bufsize, self._CHUNK))
            if len(data) <= bufsize:
                return bytes(data)
            self._buf, self._pos = data, 0
        end = self._pos + bufsize
        out = self._buf[self._pos : end]
        self._pos = min(end, len(self._buf))
        return bytes(out)

    def pending(self) -> int:
        """Return the bytes readable without a system call (buffer, TLS's own)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (int(inner()) if inner else 0)

    def send(self, data: bytes | bytearray) -> int:
        """Send through the wrapped socket."""
        return int(self._sock.send(data))

    def fileno(self) -> int:
        """Return the wrapped socket's descriptor (for ``select``)."""
        return int(self._sock.fileno())

    def close(self) -> None:
        """Close the wrapped socket and drop the buffer."""
        self._buf, self._pos = b"", 0
        self._sock.close()

    def setblocking(self, flag: bool) -> None:
        """Set the wrapped socket's blocking mode."""
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _IngestClient(mqtt.Client):
    """The ingest's paho client: buffered reads (see :class:`_BufferedSocket`)."""

    _READ_BURST = 256
    _quiet = False

    on_fast_publish: Callable[[int, str, bytes, bool, bool], None] | None = None
    """Receives each plain QoS 1 PUBLISH as ``(mid, topic, payload, dup, retain)``
    instead of ``on_message`` (see :meth:`_handle_publish`); ``None``: paho's path."""
    on_read_end: Callable[[], None] | None = None
    """Called after each :meth:`loop_read` burst (the messages of a burst can be
    handed over at once)."""

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages in order: one buffer, one wake-up of the loop.

        ``ack`` queues a 4-byte PUBACK (sent with its own ``send``) and wakes paho's
        loop with a byte on its socket pair per packet; a batch of 500 acks is one
        buffer of PUBACKs, sent in order, and one wake-up.
        """
        if not mids:
            return
        if not self._manual_ack:
            return
        packet = b"".join([_PUBACK(0x40, 2, mid) for mid in mids])
        self._quiet = True
        try:
            self._packet_queue(PUBACK, packet, 0, 1)
        finally:
            self._quiet = False
        wake = self._sockpairW
        if wake is not None:
            with contextlib.suppress(BlockingIOError):
                wake.send(b"0")

    def _handle_publish(self) -> MQTTErrorCode:
        """Hand a plain QoS 1 PUBLISH straight to :attr:`on_fast_publish`.

        paho builds a ``Properties`` object (a loop over 27 property names), an
        ``MQTTMessage`` and takes two locks per message; a gateway's PUBLISH carries no
        properties, so its topic, packet id and payload are sliced out here. Anything
        else (QoS 0/2, properties present, ``$``-topics, a malformed header) goes
        through paho.
        """
        sink = self.on_fast_publish
        header = self._in_packet["command"]
        if sink is None or (header & 0x06) != 0x02:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            end = 2 + ((packet[0] << 8) | packet[1])
            topic = bytes(packet[2:end]).decode()
            mid = (packet[end] << 8) | packet[end + 1]
            start = end + 2
            if self._protocol == mqtt.MQTTv5:
                if packet[start] != 0:  # properties present
                    return super()._handle_publish()
                start += 1
        except (IndexError, UnicodeDecodeError):
            return super()._handle_publish()
        if not topic or topic[0] == "$" or mid == 0:
            return super()._handle_publish()
        sink(mid, topic, bytes(packet[start:]), bool(header & 0x08), bool(header & 1))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if not self._quiet:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read one packet, then every complete one already buffered (up to 256).

        paho reads one packet per ``select``; buffered packets need no wait. Plain
        QoS 1 PUBLISH packets complete in the buffer are sliced out in one loop
        (:meth:`_scan_publishes`); paho reads anything else, and a packet split
        across reads.
        """
        try:
            rc = super().loop_read(max_packets)
            burst = 0
            while (
                rc == MQTTErrorCode.MQTT_ERR_SUCCESS
                and burst < self._READ_BURST
                and isinstance(self._sock, _BufferedSocket)
            ):
                burst += self._scan_publishes(self._sock, self._READ_BURST - burst)
                if burst >= self._READ_BURST or self._sock.pending() <= 0:
                    break
                rc = super().loop_read(1)
                burst += 1
        finally:
            if self.on_read_end is not None:
                self.on_read_end()
        return rc

    def _scan_publishes(self, sock: _BufferedSocket, limit: int) -> int:
        """Hand the buffer's complete plain QoS 1 PUBLISH packets to the sink.

        paho reads a packet in at least four ``recv`` calls (command, each length
        byte, the rest) and a state machine; at one sample per message that was the
        largest part of the worker's CPU. Here each complete PUBLISH with QoS 1, a
        topic not starting with ``$``, a packet id and (MQTT 5) no properties is
        sliced out of the buffer, in order, and passed to :attr:`on_fast_publish`,
        as :meth:`_handle_publish` would. The scan stops at the first other packet,
        or one not complete in the buffer, and paho goes on from there; it runs only
        between packets (paho holds no partial packet). Returns the packets taken.
        """
        sink = self.on_fast_publish
        state = self._in_packet
        if sink is None or state["command"] != 0 or state["have_remaining"]:
            return 0
        buf, pos = sock._buf, sock._pos
        end = len(buf)
        v5 = self._protocol == mqtt.MQTTv5
        taken = 0
        while taken < limit and pos + 2 <= end:
            header = buf[pos]
            if (header & 0xF6) != 0x32:  # PUBLISH, QoS 1 (DUP and RETAIN free)
                break
            # remaining length: 1-4 bytes, 7 bits each
            length = 0
            shift = 0
            at = pos + 1
            while True:
                if at >= end or shift > 21:
                    return self._scanned(sock, pos, taken)
                byte = buf[at]
                at += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            stop = at + length
            if stop > end or length < 4:
                break
            topic_end = at + 2 + ((buf[at] << 8) | buf[at + 1])
            if topic_end + 2 + v5 > stop:
                break
            mid = (buf[topic_end] << 8) | buf[topic_end + 1]
            start = topic_end + 2
            if v5:
                if buf[start] != 0:  # properties present: paho's path
                    break
                start += 1
            try:
                topic = buf[at + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            if not topic or topic[0] == "$" or mid == 0:
                break
            sink(mid, topic, buf[start:stop], bool(header & 0x08), bool(header & 1))
            pos = stop
            taken += 1
        return self._scanned(sock, pos, taken)

    def _scanned(self, sock: _BufferedSocket, pos: int, taken: int) -> int:
        if taken:
            sock._pos = pos
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        return taken


@dataclass(frozen=True, slots=True)
class Session:
    """A site's current gateway session (from its latest birth)."""

    sid: int
    birth_ts_ms: int
    online: bool


@dataclass(frozen=True, slots=True)
class SessionChange:
    """A change to a site's session row."""

    site_id: str
    group: str
    sid: int
    online: bool
    birth_ts_ms: int
    state_ts_ms: int | None
    birth: dict[str, Any] | None
    """The birth message (``None`` when only ``online`` changes)."""


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes."""

    received_at_ms: int
    samples: list[Sample] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    sessions: list[SessionChange] = field(default_factory=list)
    events: list[EvtPayload] = field(default_factory=list)
    acks: list[AckPayload] = field(default_factory=list)
    gaps: list[PermanentGap] = field(default_factory=list)
    tracks: Mapping[tuple[str, str], Track] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SinkState:
    """What the worker restores from the store at start."""

    registry: SiteRegistry
    sessions: Mapping[str, Session]
    births: Mapping[str, BirthPayload]
    tracks: list[Track]


class Sink(Protocol):
    """The store side of the ingest (implemented in ``fleet.store.telemetry``)."""

    def load(self) -> SinkState:
        """Return the registry, sessions and gap tracks persisted so far."""
        ...

    def load_registry(self) -> SiteRegistry:
        """Return the known sites (re-read periodically)."""
        ...

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction; raise on any database error."""
        ...

    def save_tracks(self, tracks: Mapping[tuple[str, str], Track], now_ms: int) -> None:
        """Persist tracker bookkeeping (backfill request times)."""
        ...

    def is_refusal(self, exc: Exception) -> bool:
        """Whether ``exc`` (from :meth:`commit`) is a refusal of the data.

        A refusal means the store is up: the worker isolates the offending message.
        Anything else is an outage: the worker holds the stream and retries.
        """
        ...


@dataclass(slots=True)
class _Msg:  # not frozen: one per message on paho's thread (treat as immutable)
    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool
    retain: bool
    gen: int


@dataclass(frozen=True, slots=True)
class _Validated:
    messages: list[_Msg]
    outcomes: list[Outcome]
    now_ms: int


_CHUNKS_PER_BATCH = 4
"""Validation chunks per transaction at most (see :attr:`IngestOptions.batch_size`)."""


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """Tuning of the ingest worker."""

    client_id: str = "bessfleet-ingest-1"
    """Fixed MQTT client id (the persistent session is keyed by it)."""
    group: str | None = None
    """Subscribe to one topic group only (``None`` = all)."""
    share: str | None = None
    """MQTT v5 shared-subscription group (``$share/{share}/…``) for scale-out; each
    worker then sees part of every site's stream, so sequence gaps are checked
    against the store before a backfill is requested."""
    batch_size: int = 4_000
    """Messages per transaction at most. The validator thread works in chunks of a
    quarter of this; the writer commits every chunk validated by the time it is free,
    up to this many messages, in one transaction: small transactions at a low rate
    (latency), large ones under a backlog (throughput)."""
    inflight_batches: int = 3
    """Batches in flight at once: one committing, the next ones validated meanwhile;
    each is acknowledged after its own commit. The MQTT 5 ReceiveMaximum is
    ``batch_size`` x this, so the broker keeps sending while a batch commits."""
    batch_ms: int = 20
    """Longest wait to fill a validation chunk [ms]: a bound on what batching adds
    to publish-to-commit latency."""
    queue_size: int = 5_000
    """Bound of the receive queue; when full, the network thread waits."""
    protocol: str = "5"
    """``"5"`` (MQTT 5) or ``"3.1.1"`` (e.g. amqtt)."""
    keepalive_s: int = 30
    disconnect_after_s: float = 30.0
    """Disconnect when the database stays down this long [s]."""
    registry_refresh_s: float = 30.0
    """Re-read the known sites this often [s]."""
    retry_max_s: float = 5.0
    """Cap of the commit retry backoff [s]."""
    reorder_timeout_s: float = 60.0
    """A sequence gap older than this triggers a backfill request [s]."""
    reconnect_reorder_timeout_s: float = 3.0
    """Reorder timeout right after a (re)connect to the broker [s]: holes seen then are
    losses (e.g. a broker crash lost what it had acknowledged), so they are asked for
    within seconds instead of after :attr:`reorder_timeout_s`."""
    reconnect_window_s: float = 60.0
    """How long after a (re)connect the short reorder timeout applies [s]."""
    session_expiry_s: int | None = None
    """MQTT 5 session expiry [s]; ``None``: 7 d alone, 300 s with :attr:`share`."""

    def effective_session_expiry_s(self) -> int:
        """Return the session expiry this worker asks the broker for [s]."""
        if self.session_expiry_s is not None:
            return self.session_expiry_s
        return SESSION_EXPIRY_S if self.share is None else SHARE_SESSION_EXPIRY_S


@dataclass(slots=True)
class IngestStats:
    """Counters since start."""

    received: int = 0
    committed_messages: int = 0
    samples: int = 0
    quarantined: int = 0
    batches: int = 0
    commit_failures: int = 0
    acked: int = 0


class IngestWorker:
    """One ingest worker: a paho network thread and one writer thread."""

    def __init__(
        self,
        mqtt_url: str,
        sink: Sink,
        options: IngestOptions | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.options = options or IngestOptions()
        if self.options.batch_size < 1 or self.options.batch_size > 65_535:
            msg = f"batch_size={self.options.batch_size} must be in 1..65535"
            raise TelemetryInputError(msg)
        if not 1 <= self.options.inflight_batches <= 16:
            msg = f"inflight_batches={self.options.inflight_batches} must be in 1..16"
            raise TelemetryInputError(msg)
        self.address = parse_mqtt_url(mqtt_url)
        self.sink = sink
        self.clock = clock
        self.stats = IngestStats()
        # paho's thread hands over each read burst (up to 257 messages) as one list
        self._queue: queue.Queue[list[_Msg]] = queue.Queue(
            maxsize=max(2, self.options.queue_size // 64)
        )
        self._burst: list[_Msg] = []
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._paused = False
        self._gen = 0
        self._lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._validator: threading.Thread | None = None
        self._chunk = max(1, self.options.batch_size // _CHUNKS_PER_BATCH)
        self._validated: queue.Queue[_Validated] = queue.Queue(
            maxsize=_CHUNKS_PER_BATCH * max(1, self.options.inflight_batches - 1)
        )
        self._validator_done = threading.Event()
        self._sys_dropped: int | None = None
        self._pending_sweep = False
        self._ever_connected = False
        self._refused: Exception | None = None
        self._connected_at = -1e9
        self._draft_sessions: dict[str, Session] = {}
        state = sink.load()
        self.registry = state.registry
        self.sessions: dict[str, Session] = dict(state.sessions)
        self.limits: dict[str, Limits] = {
            site: limits_from_birth(birth) for site, birth in state.births.items()
        }
        self.tracker = GapTracker(
            state.tracks, int(self.options.reorder_timeout_s * 1000)
        )
        self._registry_at = time.monotonic()
        self.client = self._make_client()

    # -- MQTT -------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = make_client(
            self.address,
            client_id=self.options.client_id,
            protocol=self.options.protocol,
            manual_ack=True,
            buffered=True,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if isinstance(client, _IngestClient):
            client.on_fast_publish = self._on_fast_publish
            client.on_read_end = self._on_read_end
        return client

    def _connect_properties(self) -> Properties | None:
        if self.options.protocol != "5":
            return None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.options.effective_session_expiry_s()
        props.ReceiveMaximum = min(
            65_535, self.options.batch_size * self.options.inflight_batches
        )
        return props

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            logger.error("broker refused the connection: %s", reason_code)
            return
        with self._lock:
            self._gen += 1
        session_present = bool(getattr(flags, "session_present", False))
        if not session_present:
            if self._ever_connected or self.tracker.tracks():
                logger.warning(
                    "session_present=False on connect: messages may have been lost "
                    "in the broker; sweeping backfill from every watermark"
                )
                self._pending_sweep = True
            else:
                logger.info("new persistent session for %s", self.options.client_id)
        self._ever_connected = True
        self._connected_at = time.monotonic()
        topic = ingest_subscription(self.options.group, self.options.share)
        if self.options.protocol == "5":
            client.subscribe(
                [
                    (topic, SubscribeOptions(qos=1)),
                    (SYS_DROPPED, SubscribeOptions(qos=0)),
                ]
            )
        else:
            client.subscribe([(topic, 1), (SYS_DROPPED, 0)])
        self._connected.set()
        logger.info(
            "connected to %s:%s (session_present=%s), subscribed to %s",
            self.address.host,
            self.address.port,
            session_present,
            topic,
        )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        self._connected.clear()
        logger.warning("disconnected from the broker: %s", reason_code)

    def _on_message(
        self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        topic = message.topic
        if topic.startswith("$SYS/"):
            self._check_dropped(bytes(message.payload))
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        msg = _Msg(
            message.mid,
            message.qos,
            topic,
            bytes(message.payload),
            bool(message.dup),
            bool(message.retain),
            self._gen,
        )
        self._enqueue(msg)

    def _on_fast_publish(
        self, mid: int, topic: str, payload: bytes, dup: bool, retain: bool
    ) -> None:
        """:meth:`_on_message` of a plain QoS 1 PUBLISH (paho's fast path)."""
        self._burst.append(_Msg(mid, 1, topic, payload, dup, retain, self._gen))

    def _on_read_end(self) -> None:
        """Hand the messages of one read burst to the validator at once."""
        if self._burst:
            burst, self._burst = self._burst, []
            self._enqueue_many(burst)

    def _enqueue(self, msg: _Msg) -> None:
        """Queue a received message for the validator (after the burst before it)."""
        if isinstance(self.client, _IngestClient):
            self._burst.append(msg)  # handed over at the end of paho's read
        else:
            self._enqueue_many([msg])

    def _enqueue_many(self, msgs: list[_Msg]) -> None:
        """Queue received messages for the validator; wait while the queue is full.

        Dropped unacknowledged when paused or stopping: the broker redelivers them.
        """
        if not self._paused:
            try:
                self._queue.put_nowait(msgs)
                return
            except queue.Full:
                pass
        put = self._queue.put
        while not self._stop.is_set():
            if self._paused:
                return  # not acked: the broker redelivers them after the reconnect
            try:
                put(msgs, timeout=0.5)
                return
            except queue.Full:
                continue

    def _check_dropped(self, payload: bytes) -> None:
        try:
            value = int(payload.decode().strip())
        except (UnicodeDecodeError, ValueError):
            return
        if self._sys_dropped is not None and value > self._sys_dropped:
            logger.error(
                "broker dropped %d messages (%s): check max_queued_messages",
                value - self._sys_dropped,
                SYS_DROPPED,
            )
        self._sys_dropped = value

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        """Connect (asynchronously, with retries) and start the writer thread."""
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.options.keepalive_s,
            clean_start=False
            if self.options.protocol == "5"
            else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=self._connect_properties(),
        )
        self.client.loop_start()
        self._validator = threading.Thread(
            target=self._run_validator, name="ingest-validator", daemon=True
        )
        self._validator.start()
        self._writer = threading.Thread(
            target=self._run_writer, name="ingest-writer", daemon=True
        )
        self._writer.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the batches in flight, then disconnect."""
        self._stop.set()
        if self._validator is not None:
            self._validator.join(timeout_s)
        if self._writer is not None:
            self._writer.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected; return whether it happened within ``timeout_s``."""
        return self._connected.wait(timeout_s)

    def run_forever(self, duration_s: float | None = None) -> None:
        """Start, run until stopped (or for ``duration_s``), then stop."""
        self.start()
        try:
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        finally:
            self.stop()

    # -- writer -----------------------------------------------------------------
    def _collect(self) -> list[_Msg]:
        try:
            batch = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.options.batch_ms / 1000
        while len(batch) < self._chunk:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    batch += self._queue.get_nowait()
                else:
                    batch += self._queue.get(timeout=remaining)
            except queue.Empty:
                break
        return batch

    def _validate_all(self, messages: list[_Msg], now: int) -> list[Outcome]:
        ctx = Context(self.registry, now, dict(self.limits))
        return [
            validate_message(msg.topic, msg.payload, ctx, qos=msg.qos, dup=msg.dup)
            for msg in messages
        ]

    def _run_validator(self) -> None:
        """Collect and validate the next batches while the writer commits."""
        try:
            while not self._stop.is_set():
                messages = self._collect()
                if not messages:
                    continue
                now = self.clock()
                item = _Validated(messages, self._validate_all(messages, now), now)
                while True:
                    try:
                        self._validated.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        if self._stop.is_set() and not self._writer_alive():
                            return
            # a clean stop: take what is already queued so little is redelivered
            rest: list[_Msg] = []
            while True:
                try:
                    rest += self._queue.get_nowait()
                except queue.Empty:
                    break
            if rest and not self._paused:
                now = self.clock()
                self._validated.put(
                    _Validated(rest, self._validate_all(rest, now), now)
                )
        finally:
            self._validator_done.set()

    def _writer_alive(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    def _run_writer(self) -> None:
        last_stats = time.monotonic()
        while True:
            try:
                self._periodic()
            except Exception:
                logger.exception("periodic task failed")
            try:
                item = self._validated.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set() and self._validator_done.is_set():
                    return
                continue
            messages, outcomes, now = self._coalesce(item)
            self._process(
                messages,
                retry=not self._stop.is_set(),
                outcomes=outcomes,
                now=now,
            )
            if time.monotonic() - last_stats > 10:
                last_stats = time.monotonic()
                logger.info("ingest stats: %s", self.stats)

    def _coalesce(self, item: _Validated) -> tuple[list[_Msg], list[Outcome], int]:
        """Join ``item`` and the chunks validated behind it into one transaction.

        The writer takes what is ready when it is free: one chunk at a low rate, up
        to ``batch_size`` messages under a backlog, so the per-transaction cost
        (round trips, the latest-state and gap-track upserts) is paid once for all.
        """
        messages, outcomes, now = item.messages, item.outcomes, item.now_ms
        limit = self.options.batch_size
        while len(messages) + self._chunk <= limit:
            try:
                more = self._validated.get_nowait()
            except queue.Empty:
                break
            if messages is item.messages:
                messages, outcomes = list(messages), list(outcomes)
            messages += more.messages
            outcomes += more.outcomes
            now = max(now, more.now_ms)
        return messages, outcomes, now

    def _build(
        self,
        messages: list[_Msg],
        outcomes: list[Outcome] | None = None,
        now: int | None = None,
    ) -> Batch:
        now = self.clock() if now is None else now
        if outcomes is None:
            outcomes = self._validate_all(messages, now)
        batch = Batch(received_at_ms=now)
        sessions = dict(self.sessions)
        self.tracker.begin()
        for msg, out in zip(messages, outcomes, strict=True):
            samples = out.samples
            batch.samples.extend(samples)
            batch.quarantined.extend(out.quarantined)
            if out.run:
                first = samples[0]
                self.tracker.observe_run(first.site_id, first.dev_id, samples, now)
            else:
                for sample in samples:
                    self.tracker.observe_sample(
                        sample.site_id, sample.dev_id, sample.seq, sample.ts_ms, now
                    )
            if out.birth is not None and out.group is not None:
                self._on_birth(out.birth, out.group, sessions, batch, now)
            if out.state is not None and out.group is not None:
                self._on_state(msg.topic, out.state, out.group, sessions, batch)
            if out.evt is not None:
                batch.events.append(out.evt)
                evt = out.evt
                if (
                    evt.kind == "backfill_unavailable"
                    and evt.dev is not None
                    and evt.from_seq is not None
                    and evt.to_seq is not None
                ):
                    gap = self.tracker.observe_permanent_gap(
                        evt.site, evt.dev, evt.from_seq, evt.to_seq, now
                    )
                    if gap is not None:
                        batch.gaps.append(gap)
            if out.ack is not None:
                site = msg.topic.split("/")[3]
                batch.acks.append(out.ack.model_copy(update={"site": site}))
        batch.tracks = dict(self.tracker.draft())
        self._draft_sessions = sessions
        return batch

    def _on_birth(
        self,
        birth: BirthPayload,
        group: str,
        sessions: dict[str, Session],
        batch: Batch,
        now: int,
    ) -> None:
        current = sessions.get(birth.site)
        if current is not None and birth.sid == current.sid:
            # the gateway reconnected: its seq_next shows what the broker lost
            self.tracker.observe_seq_next(birth.site, birth.seq_next, now)
            return
        if current is not None and birth.ts < current.birth_ts_ms:
            return  # a stale (retained) birth
        sessions[birth.site] = Session(birth.sid, birth.ts, True)
        self.tracker.observe_birth(birth.site, birth.seq_next, now)
        batch.sessions.append(
            SessionChange(
                birth.site,
                group,
                birth.sid,
                True,
                birth.ts,
                birth.ts,
                birth.model_dump(mode="json"),
            )
        )

    def _on_state(
        self,
        topic: str,
        state: StatePayload,
        group: str,
        sessions: dict[str, Session],
        batch: Batch,
    ) -> None:
        site = topic.split("/")[3]
        current = sessions.get(site)
        if current is None or state.sid != current.sid:
            logger.info(
                "site %s: ignoring state for sid %s (stale Will)", site, state.sid
            )
            return
        if current.online == state.online:
            return
        sessions[site] = Session(current.sid, current.birth_ts_ms, state.online)
        batch.sessions.append(
            SessionChange(
                site,
                group,
                state.sid,
                state.online,
                current.birth_ts_ms,
                state.ts,
                None,
            )
        )
        if not state.online:
            logger.warning("site %s went offline (sid %s)", site, state.sid)

    def _process(
        self,
        messages: list[_Msg],
        retry: bool = True,
        outcomes: list[Outcome] | None = None,
        now: int | None = None,
    ) -> None:
        self.stats.received += len(messages)
        self._write(messages, retry=retry, outcomes=outcomes, now=now)

    def _write(
        self,
        messages: list[_Msg],
        *,
        retry: bool,
        outcomes: list[Outcome] | None = None,
        now: int | None = None,
    ) -> bool:
        """Commit ``messages`` then ack them; isolate what the store refuses.

        Returns ``False`` when the store is down and the messages were left unacked
        (the broker redelivers them), ``True`` once every message is committed or
        quarantined and acknowledged.
        """
        if outcomes is None:
            now = self.clock() if now is None else now
            outcomes = self._validate_all(messages, now)
        batch = self._build(messages, outcomes, now)
        if not self._commit(batch, retry=retry):
            return False
        if self._refused is not None:
            exc, self._refused = self._refused, None
            self.tracker.begin()
            if len(messages) == 1:
                return self._reject(messages[0], exc, retry=retry)
            half = len(messages) // 2
            logger.warning(
                "store refused a batch of %d messages (%s): splitting it",
                len(messages),
                _first_line(exc),
            )
            return self._write(
                messages[:half], retry=retry, outcomes=outcomes[:half], now=now
            ) and self._write(
                messages[half:], retry=retry, outcomes=outcomes[half:], now=now
            )
        self._after_commit(messages, batch)
        return True

    def _commit(self, batch: Batch, *, retry: bool) -> bool:
        """Commit ``batch``, retrying while the store is down.

        Returns ``False`` when it gave up (stopping, or disconnected for an outage);
        sets ``self._refused`` when the store is up but refused the batch's data.
        """
        delay = 0.1
        outage_started: float | None = None
        while True:
            try:
                self.sink.commit(batch)
                return True
            except Exception as exc:
                self.stats.commit_failures += 1
                if self._is_refusal(exc):
                    self._refused = exc
                    return True
                if outage_started is None:
                    outage_started = time.monotonic()
                logger.error(
                    "commit failed (%s); nothing acked, retrying in %.1f s",
                    _first_line(exc),
                    delay,
                )
                if not retry or self._stop.is_set():
                    return False
                if time.monotonic() - outage_started > self.options.disconnect_after_s:
                    self._pause_until_store_back(batch)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, self.options.retry_max_s)

    def _is_refusal(self, exc: Exception) -> bool:
        """Whether the store is up and refused this batch's data (not an outage)."""
        judge = getattr(self.sink, "is_refusal", None)
        if judge is None:
            return False
        try:
            return bool(judge(exc))
        except Exception:
            logger.exception("could not classify a store error")
            return False

    def _reject(self, msg: _Msg, exc: Exception, *, retry: bool) -> bool:
        """Quarantine one message the store refused as ``store_rejected``, then ack it."""
        now = self.clock()
        detail = _first_line(exc, 1000)
        logger.error(
            "store refused the message on %s: %s (quarantined as store_rejected)",
            msg.topic,
            detail,
        )
        # its samples are accounted for (in quarantine): no backfill loop for them
        ctx = Context(self.registry, now, self.limits)
        out = validate_message(msg.topic, msg.payload, ctx, qos=msg.qos, dup=msg.dup)
        batch = Batch(received_at_ms=now)
        self.tracker.begin()
        for sample in out.samples:
            gap = self.tracker.observe_rejected(
                sample.site_id, sample.dev_id, sample.seq, now
            )
            if gap is not None:
                batch.gaps.append(gap)
        batch.tracks = dict(self.tracker.draft())
        batch.quarantined.append(
            Quarantined(
                topic=msg.topic,
                payload=msg.payload,
                reason="store_rejected",
                detail=detail,
                site_from_topic=site_from_topic(msg.topic),
                schema_v=None,
                qos=msg.qos,
                dup=msg.dup,
            )
        )
        self._draft_sessions = dict(self.sessions)
        if not self._commit(batch, retry=retry):
            return False
        if self._refused is not None:
            # the store refuses even the quarantine row: treat it as an outage
            exc2, self._refused = self._refused, None
            logger.error("store refused the quarantine row too: %s", exc2)
            self.tracker.begin()
            return False
        self._after_commit([msg], batch)
        return True

    def _after_commit(self, messages: list[_Msg], batch: Batch) -> None:
        self.tracker.commit()
        self.sessions = self._draft_sessions
        for change in batch.sessions:
            if change.birth is not None:
                self.limits[change.site_id] = limits_from_birth(
                    BirthPayload.model_validate(change.birth)
                )
        gen = self._gen
        mids = [m.mid for m in messages if m.qos == 1 and m.gen == gen]
        if isinstance(self.client, _IngestClient):
            self.client.ack_many(mids)
        else:
            for mid in mids:
                self.client.ack(mid, 1)
        for msg in messages:
            if msg.qos == 2 and msg.gen == gen:
                self.client.ack(msg.mid, 2)
                mids.append(msg.mid)
        self.stats.acked += len(mids)
        self.stats.batches += 1
        self.stats.committed_messages += len(messages)
        self.stats.samples += len(batch.samples)
        self.stats.quarantined += len(batch.quarantined)

    def _pause_until_store_back(self, batch: Batch) -> None:
        """Disconnect, drop what is queued (unacked: the broker keeps it), wait, resume."""
        logger.error(
            "store down for > %.0f s: disconnecting", self.options.disconnect_after_s
        )
        self._paused = True
        self.client.disconnect()
        self.client.loop_stop()  # a user disconnect ends paho's network thread
        for pending in (self._queue, self._validated):
            while True:
                try:
                    pending.get_nowait()
                except queue.Empty:
                    break
        self.tracker.begin()
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.sink.commit(Batch(received_at_ms=self.clock()))
                break
            except Exception as exc:
                logger.error("store still down (%s)", exc)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._paused = False
        if not self._stop.is_set():
            logger.info("store back: reconnecting")
            try:
                self.client.reconnect()
            except OSError as exc:
                logger.warning("reconnect failed (%s); paho keeps retrying", exc)
            self.client.loop_start()
        del batch

    def _periodic(self) -> None:
        if time.monotonic() - self._registry_at > self.options.registry_refresh_s:
            self._registry_at = time.monotonic()
            try:
                self.registry = self.sink.load_registry()
            except Exception as exc:
                logger.warning("could not refresh the site registry: %s", exc)
        if not self._connected.is_set():
            return
        now = self.clock()
        requests: list[BackfillRequest] = []
        if self._pending_sweep:
            self._pending_sweep = False
            requests.extend(self.tracker.sweep())
        fast = time.monotonic() - self._connected_at < self.options.reconnect_window_s
        timeout_ms = (
            int(self.options.reconnect_reorder_timeout_s * 1000) if fast else None
        )
        due = self.tracker.due_backfills(now, timeout_ms)
        if due and self.options.share is not None:
            due = self._reconcile_with_store(due, now, timeout_ms)
        requests.extend(due)
        for req in requests:
            self._publish_backfill(req)
        for req in due:
            self.tracker.mark_requested(req, now)
        if due:
            try:
                self.sink.save_tracks(self.tracker.tracks(), now)
            except Exception as exc:
                logger.warning("could not save backfill bookkeeping: %s", exc)

    def _reconcile_with_store(
        self, due: list[BackfillRequest], now: int, timeout_ms: int | None = None
    ) -> list[BackfillRequest]:
        """Fill holes that other workers of the share group stored; return what is left."""
        stored_seqs = getattr(self.sink, "stored_seqs", None)
        if stored_seqs is None:
            return due
        # one query per device over the span of its holes (not one per hole: a share
        # member's device has up to 32 holes every round)
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        for req in due:
            key = (req.site_id, req.dev_id)
            low, high = spans.get(key, (req.from_seq, req.to_seq))
            spans[key] = (min(low, req.from_seq), max(high, req.to_seq))
        self.tracker.begin()
        try:
            for (site_id, dev_id), (low, high) in spans.items():
                for seq, ts_ms in stored_seqs(site_id, dev_id, low, high):
                    self.tracker.observe_sample(site_id, dev_id, seq, ts_ms, now)
        except Exception as exc:
            logger.warning("could not read stored sequences: %s", exc)
            self.tracker.begin()
            return due
        self.tracker.commit()
        return self.tracker.due_backfills(now, timeout_ms)

    def _publish_backfill(self, req: BackfillRequest) -> None:
        spec = self.registry.get(req.site_id)
        if spec is None:
            return
        payload = CtlPayload(
            op="backfill", dev=req.dev_id, from_seq=req.from_seq, to_seq=req.to_seq
        )
        self.client.publish(
            down(spec.group, spec.site_id, "ctl"), dumps(payload), qos=1
        )
        logger.info(
            "backfill requested: %s/%s seq %d..%d",
            req.site_id,
            req.dev_id,
            req.from_seq,
            req.to_seq,
        )
