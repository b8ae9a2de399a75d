"""Track per-device sequence contiguity, open gaps and backfill requests (spec 5)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from telemetry.payloads import U64_MAX

HOLES_PER_REQUEST = 32
"""Missing ranges of one device asked for at once (a shared-subscription member that
died leaves every other seq missing: one range per round trip would take ages)."""
REORDER_TIMEOUT_MS = 60_000
"""A gap older than this triggers a backfill request (Sparkplug reorder timeout)."""
BACKFILL_RETRY_MAX_MS = 3_600_000
"""Backoff cap between backfill retries for the same hole."""
MAX_PERMANENT_RANGE = 1_000_000
"""Largest permanent-gap range marked seq by seq."""
_UNKNOWN_TS = -1


class SeqTs(Protocol):
    """A stored sample as the tracker sees it."""

    @property
    def seq(self) -> int:
        """Sequence number of the sample."""
        ...

    @property
    def ts_ms(self) -> int:
        """Sample time [ms since epoch, UTC]."""
        ...


@dataclass(slots=True)
class Track:
    """Sequence state of one (site, dev): the watermark and what lies above it."""

    site_id: str
    dev_id: str
    epoch: int
    contiguous_seq: int
    """Highest N such that every seq <= N of this epoch is stored (or a known gap)."""
    contiguous_ts_ms: int | None
    """Sample time of ``contiguous_seq`` [ms, UTC], if known."""
    max_seq_seen: int
    max_ts_ms: int | None
    first_gap_seen_at_ms: int | None = None
    backfill_requested_at_ms: int | None = None
    backfill_attempts: int = 0
    pending: dict[int, int] = field(default_factory=dict)
    """Seqs above the watermark already stored -> their ts (``-1`` = permanent gap)."""

    @property
    def has_gap(self) -> bool:
        """Whether seqs are missing between the watermark and the highest seq seen."""
        return self.max_seq_seen > self.contiguous_seq

    def first_hole(self) -> tuple[int, int]:
        """Return the first missing range ``(from_seq, to_seq)`` above the watermark."""
        start = self.contiguous_seq + 1
        above = [s for s in self.pending if s > start]
        end = (min(above) - 1) if above else self.max_seq_seen
        return start, end

    def holes(self, limit: int) -> list[tuple[int, int]]:
        """Return up to ``limit`` missing ranges above the watermark, lowest first."""
        out: list[tuple[int, int]] = []
        start = self.contiguous_seq + 1
        for seq in sorted(self.pending):
            if len(out) >= limit:
                return out
            if seq > start:
                out.append((start, seq - 1))
            start = max(start, seq + 1)
        if start <= self.max_seq_seen and len(out) < limit:
            out.append((start, self.max_seq_seen))
        return out


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    """A ``down/ctl`` backfill to publish for one device's hole."""

    site_id: str
    dev_id: str
    from_seq: int
    to_seq: int


@dataclass(frozen=True, slots=True)
class PermanentGap:
    """A range the gateway no longer holds ("not in buffer")."""

    site_id: str
    dev_id: str
    epoch: int
    from_seq: int
    to_seq: int
    reason: str


def _advance(track: Track) -> bool:
    moved = False
    while track.contiguous_seq + 1 in track.pending:
        track.contiguous_seq += 1
        ts = track.pending.pop(track.contiguous_seq)
        if ts != _UNKNOWN_TS:
            track.contiguous_ts_ms = ts
        moved = True
    # drop stale entries at or below the watermark; only a move can make one (every
    # entry is above the watermark when added): scanning on every sample made a
    # ``--share`` worker's tracking quadratic, its pending set holding the other
    # members' seqs
    if moved and track.pending and min(track.pending) <= track.contiguous_seq:
        track.pending = {
            s: t for s, t in track.pending.items() if s > track.contiguous_seq
        }
    return moved


class GapTracker:
    """Per-(site, dev) sequence tracking with copy-on-write updates.

    Changes are planned on copies with :meth:`begin`/the ``observe_*`` methods and
    become visible only through :meth:`commit`, after the store committed them:
    a failed database transaction leaves the tracker as it was.
    """

    def __init__(
        self, tracks: Iterable[Track] = (), reorder_timeout_ms: int = REORDER_TIMEOUT_MS
    ) -> None:
        self.reorder_timeout_ms = reorder_timeout_ms
        self._tracks: dict[tuple[str, str], Track] = {
            (t.site_id, t.dev_id): t for t in tracks
        }
        self._draft: dict[tuple[str, str], Track] = {}

    def tracks(self) -> Mapping[tuple[str, str], Track]:
        """Return the committed tracks (read-only view by convention)."""
        return self._tracks

    def get(self, site_id: str, dev_id: str) -> Track | None:
        """Return the (draft, else committed) track of a device."""
        key = (site_id, dev_id)
        return self._draft.get(key) or self._tracks.get(key)

    def begin(self) -> None:
        """Start a new draft (discarding an uncommitted one)."""
        self._draft = {}

    def _edit(self, site_id: str, dev_id: str) -> Track | None:
        key = (site_id, dev_id)
        if key in self._draft:
            return self._draft[key]
        base = self._tracks.get(key)
        if base is None:
            return None
        draft = copy.copy(base)
        draft.pending = dict(base.pending)
        self._draft[key] = draft
        return draft

    def observe_sample(
        self, site_id: str, dev_id: str, seq: int, ts_ms: int, now_ms: int
    ) -> None:
        """Record that sample ``seq`` (time ``ts_ms``) of a device is stored."""
        track = self._edit(site_id, dev_id)
        if track is None:
            track = Track(site_id, dev_id, 0, seq - 1, None, seq - 1, None)
            self._draft[(site_id, dev_id)] = track
        if seq <= track.contiguous_seq:
            return
        if seq == track.contiguous_seq + 1 and not track.pending:
            _step_to(track, seq, ts_ms, now_ms)  # the common case, in order
            return
        track.pending[seq] = ts_ms
        if seq > track.max_seq_seen:
            track.max_seq_seen = seq
            track.max_ts_ms = ts_ms
        self._settle(track, now_ms)

    def observe_run(
        self,
        site_id: str,
        dev_id: str,
        samples: Sequence[SeqTs],
        now_ms: int,
    ) -> None:
        """:meth:`observe_sample` of a device's samples (``seq``, ``ts_ms``), in order.

        Meant for a batched message, each seq one above the one before. When the run
        continues the device's watermark with nothing pending (the common case) the
        track moves once, to where the samples one by one would have moved it;
        otherwise each sample is observed on its own.
        """
        if not samples:
            return
        first, last = samples[0].seq, samples[-1].seq
        track = self._edit(site_id, dev_id)
        if track is None:
            track = Track(site_id, dev_id, 0, first - 1, None, first - 1, None)
            self._draft[(site_id, dev_id)] = track
        if (
            first != track.contiguous_seq + 1
            or track.pending
            or last - first != len(samples) - 1
        ):
            for sample in samples:
                self.observe_sample(site_id, dev_id, sample.seq, sample.ts_ms, now_ms)
            return
        _step_to(track, last, samples[-1].ts_ms, now_ms)

    def observe_birth(
        self, site_id: str, seq_next: Mapping[str, int], now_ms: int
    ) -> None:
        """Apply a (new) birth's ``seq_next`` per device.

        A ``seq_next`` below what was already seen starts a new epoch (gateway
        replaced or reset); one above it opens a gap the outbox flush should fill.
        """
        for dev_id, nxt in seq_next.items():
            track = self._edit(site_id, dev_id)
            if track is None:
                self._draft[(site_id, dev_id)] = Track(
                    site_id, dev_id, 0, nxt - 1, None, nxt - 1, None
                )
                continue
            if nxt - 1 < track.max_seq_seen:
                track.epoch += 1
                track.contiguous_seq = nxt - 1
                track.max_seq_seen = nxt - 1
                track.pending = {}
                track.first_gap_seen_at_ms = None
                track.backfill_requested_at_ms = None
                track.backfill_attempts = 0
            elif nxt - 1 > track.max_seq_seen:
                track.max_seq_seen = nxt - 1
                self._settle(track, now_ms)

    def observe_seq_next(
        self, site_id: str, seq_next: Mapping[str, int], now_ms: int
    ) -> None:
        """Apply a repeated birth of the current session: only open gaps ahead.

        A gateway that reconnects with the same ``sid`` republishes its birth; a
        ``seq_next`` beyond what was seen means samples the broker acknowledged to the
        gateway never arrived (e.g. lost in a broker crash). It never starts an epoch:
        a stale retained copy of the birth must not move anything back.
        """
        for dev_id, nxt in seq_next.items():
            track = self._edit(site_id, dev_id)
            if track is not None and nxt - 1 > track.max_seq_seen:
                track.max_seq_seen = nxt - 1
                self._settle(track, now_ms)

    def observe_permanent_gap(
        self, site_id: str, dev_id: str, from_seq: int, to_seq: int, now_ms: int
    ) -> PermanentGap | None:
        """Mark ``from_seq..to_seq`` as lost for good; return the gap to record."""
        track = self._edit(site_id, dev_id)
        if track is None or to_seq <= track.contiguous_seq:
            return None
        start = max(from_seq, track.contiguous_seq + 1)
        end = min(to_seq, track.max_seq_seen, start + MAX_PERMANENT_RANGE)
        if end < start:
            return None
        for seq in range(start, end + 1):
            track.pending.setdefault(seq, _UNKNOWN_TS)
        self._settle(track, now_ms)
        return PermanentGap(site_id, dev_id, track.epoch, start, end, "not_in_buffer")

    def observe_rejected(
        self, site_id: str, dev_id: str, seq: int, now_ms: int
    ) -> PermanentGap | None:
        """Mark sample ``seq`` as quarantined by the store (``store_rejected``).

        The sample is kept in quarantine, so its seq is accounted for: no backfill is
        requested for it. Returns the one-seq gap to record, or ``None`` if the seq is
        already below the watermark.
        """
        track = self._edit(site_id, dev_id)
        if track is None:
            track = Track(site_id, dev_id, 0, seq - 1, None, seq - 1, None)
            self._draft[(site_id, dev_id)] = track
        if seq <= track.contiguous_seq:
            return None
        track.pending.setdefault(seq, _UNKNOWN_TS)
        track.max_seq_seen = max(track.max_seq_seen, seq)
        self._settle(track, now_ms)
        return PermanentGap(site_id, dev_id, track.epoch, seq, seq, "store_rejected")

    def _settle(self, track: Track, now_ms: int) -> None:
        if _advance(track):
            track.backfill_requested_at_ms = None
            track.backfill_attempts = 0
        if track.has_gap:
            if track.first_gap_seen_at_ms is None:
                track.first_gap_seen_at_ms = now_ms
        else:
            track.first_gap_seen_at_ms = None
            track.backfill_requested_at_ms = None
            track.backfill_attempts = 0

    def draft(self) -> Mapping[tuple[str, str], Track]:
        """Return the tracks changed in the current draft."""
        return self._draft

    def commit(self) -> None:
        """Make the draft the committed state (call after the store committed it)."""
        self._tracks.update(self._draft)
        self._draft = {}

    def due_backfills(
        self, now_ms: int, reorder_timeout_ms: int | None = None
    ) -> list[BackfillRequest]:
        """Return the backfill requests due now (reorder timeout, then backoff).

        ``reorder_timeout_ms`` overrides the tracker's timeout, e.g. a few seconds
        right after a broker reconnect, when holes are losses rather than reordering.
        """
        timeout = (
            self.reorder_timeout_ms
            if reorder_timeout_ms is None
            else reorder_timeout_ms
        )
        out = []
        for track in self._tracks.values():
            if not track.has_gap or track.first_gap_seen_at_ms is None:
                continue
            if now_ms - track.first_gap_seen_at_ms < timeout:
                continue
            if track.backfill_requested_at_ms is not None:
                wait = min(
                    max(timeout, 1000) * 2**track.backfill_attempts,
                    BACKFILL_RETRY_MAX_MS,
                )
                if now_ms - track.backfill_requested_at_ms < wait:
                    continue
            for start, end in track.holes(HOLES_PER_REQUEST):
                out.append(BackfillRequest(track.site_id, track.dev_id, start, end))
        return out

    def mark_requested(self, request: BackfillRequest, now_ms: int) -> None:
        """Note that ``request`` was published (drives the retry backoff)."""
        track = self._tracks.get((request.site_id, request.dev_id))
        if track is not None and track.backfill_requested_at_ms != now_ms:
            # one attempt per device per round, however many holes it asked for
            track.backfill_requested_at_ms = now_ms
            track.backfill_attempts += 1

    def sweep(self) -> list[BackfillRequest]:
        """Return a backfill from every device's watermark (after a lost session)."""
        return [
            BackfillRequest(t.site_id, t.dev_id, t.contiguous_seq + 1, U64_MAX)
            for t in self._tracks.values()
        ]


def _step_to(track: Track, seq: int, ts_ms: int, now_ms: int) -> None:
    """Move an in-order track with nothing pending to ``seq`` (time ``ts_ms``).

    What :meth:`GapTracker._settle` would do for the next seq, without its dict: the
    watermark, the newest seen, and the backfill state reset.
    """
    track.contiguous_seq = seq
    if ts_ms != _UNKNOWN_TS:
        track.contiguous_ts_ms = ts_ms
    if seq > track.max_seq_seen:
        track.max_seq_seen = seq
        track.max_ts_ms = ts_ms
    track.backfill_requested_at_ms = None
    track.backfill_attempts = 0
    if track.max_seq_seen > seq:
        if track.first_gap_seen_at_ms is None:
            track.first_gap_seen_at_ms = now_ms
    else:
        track.first_gap_seen_at_ms = None
