"""Where the ingest's CPU goes per stage, without MQTT: validate, build, commit.

Prints figures, asserts nothing. Builds M messages of the bench's payloads (one sample
per message, or ``--batch-samples K`` in the batched live form), then times, in this
process, (1) validation of every message, (2) the worker's batch building (gap tracker)
and (3) the store's commit into the given database (SQLite file when ``--db`` is not
given), in batches of 500 messages as the worker does; ``--profile`` prints the top of a
cProfile of the three stages.

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/ingest_stages.py --messages 20000 \
        [--batch-samples 30] [--db postgresql+psycopg://postgres@127.0.0.1:5432/NAME] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--batch-samples", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--db", help="store URL (default: a temporary SQLite file)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="garbage collector as `bessfleet ingest` sets it, or Python's default",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import ingest_bench as ib

    from fleet.store.engine import make_engine
    from fleet.store.telemetry import SqlTelemetrySink
    from telemetry.ingest import IngestOptions, IngestWorker, _Msg, tune_gc_for_ingest

    if args.gc == "tuned":
        tune_gc_for_ingest()

    k = args.batch_samples
    n = (args.messages // args.sites) * args.sites
    sites = ib.site_ids(args.sites)
    base = ib.now_ms() - 3_000_000
    msgs: list[_Msg] = []
    mid = 0
    for j in range(n // args.sites):
        for site in sites:
            dev = "bank1" if j % 2 == 0 else "pcs1"
            seq = j // 2 + 1
            mid += 1
            msgs.append(
                _Msg(
                    mid % 65535 + 1,
                    1,
                    f"bess/v1/{ib.GROUP}/{site}/up/tlm/{dev}",
                    ib.payload(site, dev, seq, base + seq * k, k),
                    False,
                    False,
                    0,
                )
            )
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{tmp}/stages.sqlite"
        results: dict[str, list[float]] = {"validate": [], "build": [], "commit": []}
        prof = cProfile.Profile() if args.profile else None
        for _ in range(args.repeat):
            ib.prepare_store(url, args.sites)
            sink = SqlTelemetrySink(make_engine(url))
            worker = IngestWorker("mqtt://127.0.0.1:1", sink, IngestOptions())
            stored_before = 0
            t = dict.fromkeys(results, 0.0)
            if prof:
                prof.enable()
            for start in range(0, n, args.batch_size):
                chunk = msgs[start : start + args.batch_size]
                now = ib.now_ms()
                c0 = time.process_time()
                outcomes = worker._validate_all(chunk, now)
                c1 = time.process_time()
                batch = worker._build(chunk, outcomes, now)
                c2 = time.process_time()
                sink.commit(batch)
                c3 = time.process_time()
                worker.tracker.commit()
                t["validate"] += c1 - c0
                t["build"] += c2 - c1
                t["commit"] += c3 - c2
                stored_before += len(batch.samples)
            if prof:
                prof.disable()
            for key, value in t.items():
                results[key].append(value)
            sink.engine.dispose()
            assert stored_before == n * k, (stored_before, n * k)
        print(
            f"{n:,} messages x {k} sample(s), store {url.split(':')[0]}, "
            f"batches of {args.batch_size}, gc {args.gc}, {args.repeat} runs "
            "(CPU of this process):"
        )
        total = 0.0
        for key, values in results.items():
            med = sorted(values)[len(values) // 2]
            total += med
            print(
                f"  {key:8s} {1e6 * med / n:7.1f} µs/msg  {1e6 * med / (n * k):7.2f} µs/sample"
                f"  (runs {', '.join(f'{v:.2f}' for v in values)} s)"
            )
        print(
            f"  total    {n * k / total:,.0f} samples per CPU-second "
            "(no MQTT: paho and acks not included)"
        )
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    main()
