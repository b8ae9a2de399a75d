"""The gap tracker: watermark, reorder timeout, backfill backoff, epochs, permanent gaps."""

from __future__ import annotations

from telemetry.gaps import BackfillRequest, GapTracker


def observe(tracker: GapTracker, seqs: list[int], now: int = 0) -> None:
    tracker.begin()
    for seq in seqs:
        tracker.observe_sample("s", "bank1", seq, 1000 + seq, now)
    tracker.commit()


def test_tracker_advances_watermark_when_out_of_order_fills_hole() -> None:
    tracker = GapTracker()
    observe(tracker, [1, 2, 5, 4])
    track = tracker.get("s", "bank1")
    assert track is not None
    assert (track.contiguous_seq, track.max_seq_seen) == (2, 5)
    assert track.first_hole() == (3, 3)
    observe(tracker, [3])
    assert (track := tracker.get("s", "bank1")) is not None
    assert (track.contiguous_seq, track.contiguous_ts_ms, track.has_gap) == (
        5,
        1005,
        False,
    )


def test_tracker_discards_draft_when_not_committed() -> None:
    tracker = GapTracker()
    observe(tracker, [1])
    tracker.begin()
    tracker.observe_sample("s", "bank1", 2, 1002, 0)
    tracker.begin()  # the transaction failed: start over
    track = tracker.get("s", "bank1")
    assert track is not None
    assert track.contiguous_seq == 1


def test_tracker_requests_backfill_after_reorder_timeout_then_backs_off() -> None:
    tracker = GapTracker(reorder_timeout_ms=60_000)
    observe(tracker, [1, 4], now=0)
    assert tracker.due_backfills(59_999) == []
    due = tracker.due_backfills(60_000)
    assert due == [BackfillRequest("s", "bank1", 2, 3)]
    tracker.mark_requested(due[0], 60_000)
    assert tracker.due_backfills(60_000 + 119_999) == []
    assert tracker.due_backfills(60_000 + 120_000) == due


def test_tracker_records_permanent_gap_when_gateway_evicted_range() -> None:
    tracker = GapTracker()
    observe(tracker, [1, 6])
    tracker.begin()
    gap = tracker.observe_permanent_gap("s", "bank1", 2, 5, 0)
    tracker.commit()
    assert gap is not None
    assert (gap.from_seq, gap.to_seq) == (2, 5)
    track = tracker.get("s", "bank1")
    assert track is not None
    assert track.contiguous_seq == 6
    assert not track.has_gap


def test_tracker_starts_new_epoch_when_birth_seq_next_goes_back() -> None:
    tracker = GapTracker()
    observe(tracker, [100, 101])
    tracker.begin()
    tracker.observe_birth("s", {"bank1": 1}, 0)
    tracker.commit()
    track = tracker.get("s", "bank1")
    assert track is not None
    assert (track.epoch, track.contiguous_seq, track.max_seq_seen) == (1, 0, 0)


def test_tracker_opens_gap_when_birth_seq_next_skips_ahead() -> None:
    tracker = GapTracker()
    observe(tracker, [1, 2])
    tracker.begin()
    tracker.observe_birth("s", {"bank1": 10}, 5)
    tracker.commit()
    track = tracker.get("s", "bank1")
    assert track is not None
    assert track.first_hole() == (3, 9)
    assert track.first_gap_seen_at_ms == 5


def test_tracker_sweeps_from_every_watermark_when_session_lost() -> None:
    tracker = GapTracker()
    observe(tracker, [1, 2, 3])
    (req,) = tracker.sweep()
    assert (req.from_seq, req.to_seq) == (4, 2**64 - 1)


def test_tracker_requests_within_seconds_when_timeout_overridden_after_reconnect() -> (
    None
):
    tracker = GapTracker(reorder_timeout_ms=60_000)
    observe(tracker, [1, 2, 9], now=0)
    assert tracker.due_backfills(5_000) == []
    assert tracker.due_backfills(5_000, reorder_timeout_ms=3_000) == [
        BackfillRequest("s", "bank1", 3, 8)
    ]


def test_tracker_opens_gap_but_keeps_epoch_when_same_session_birth_repeats() -> None:
    tracker = GapTracker(reorder_timeout_ms=1_000)
    observe(tracker, [1, 2, 3])
    tracker.begin()
    tracker.observe_seq_next("s", {"bank1": 8}, 0)  # samples 4..7 never arrived
    tracker.observe_seq_next("s", {"bank1": 2}, 0)  # a stale retained copy
    tracker.commit()
    track = tracker.get("s", "bank1")
    assert track is not None
    assert (track.epoch, track.contiguous_seq, track.max_seq_seen) == (0, 3, 7)
    assert tracker.due_backfills(2_000) == [BackfillRequest("s", "bank1", 4, 7)]


def test_tracker_accounts_store_rejected_seq_without_backfill() -> None:
    tracker = GapTracker(reorder_timeout_ms=1_000)
    observe(tracker, [1, 2])
    tracker.begin()
    gap = tracker.observe_rejected("s", "bank1", 3, 0)
    tracker.observe_sample("s", "bank1", 4, 1004, 0)
    tracker.commit()
    assert gap is not None
    assert (gap.from_seq, gap.to_seq, gap.reason) == (3, 3, "store_rejected")
    track = tracker.get("s", "bank1")
    assert track is not None
    assert (track.contiguous_seq, track.has_gap) == (4, False)
    assert tracker.due_backfills(10_000) == []


def test_tracker_asks_for_every_hole_of_a_device_in_one_round() -> None:
    tracker = GapTracker(reorder_timeout_ms=1_000)
    observe(tracker, [1, 3, 5, 7, 8], now=0)  # what one of two share members saw
    due = tracker.due_backfills(2_000)
    assert [(r.from_seq, r.to_seq) for r in due] == [(2, 2), (4, 4), (6, 6)]
    for req in due:
        tracker.mark_requested(req, 2_000)
    track = tracker.get("s", "bank1")
    assert track is not None
    assert track.backfill_attempts == 1
