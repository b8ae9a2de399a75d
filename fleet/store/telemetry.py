"""Store telemetry: the ingest's transactional sink, stats, watermarks, setpoints.

Keyword-only functions over SQLAlchemy Core connections, plus :class:`SqlTelemetrySink`
which implements :class:`telemetry.ingest.Sink` for the ingest worker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import msgspec
import psycopg
import sqlalchemy as sa
from psycopg.types.json import set_json_dumps
from sqlalchemy.dialects import postgresql, sqlite

import fleet.store.telemetry_tables as tt
from fleet.errors import StoreError
from fleet.store.audit import record as audit_record
from fleet.store.engine import make_engine
from fleet.store.tables import metadata
from telemetry.compiled import (
    COPY_COLUMNS,
    COPY_SIGNATURE,
    COPY_TRAILER,
    copy_record_of,
)
from telemetry.errors import TelemetryInputError
from telemetry.gaps import Track
from telemetry.ingest import Batch, Session, SinkState, now_ms
from telemetry.payloads import AckPayload, BirthPayload, SetpointPayload
from telemetry.registry import SiteRegistry, SiteSpec, site_spec_from
from telemetry.validation import (
    Context,
    Quarantined,
    Sample,
    legacy_payload_hash,
    previous_payload_hash,
    validate_message,
)

logger = logging.getLogger(__name__)

_COLUMNS = frozenset(tt.MEASUREMENT_COLUMNS)
_TWO_64 = 2**64
_TWO_63 = 2**63


def to_i64(value: int) -> int:
    """Map a u64 ``seq``/``sid`` onto the signed 64-bit column (two's complement).

    Values below 2**63 are stored unchanged (so is ``-1``, an empty watermark).
    """
    return value - _TWO_64 if value >= _TWO_63 else value


def from_i64(value: int) -> int:
    """Inverse of :func:`to_i64` for ``seq``/``sid`` columns."""
    return value + _TWO_64 if value < 0 else value


def _watermark_from_i64(value: int) -> int:
    """Read a tracker watermark: ``-1`` means "nothing yet" (seq 2**64-1 is unused)."""
    return -1 if value == -1 else from_i64(value)


def i64_ranges(low: int, high: int) -> list[tuple[int, int]]:
    """Return the signed column ranges that hold the u64 range ``low..high``."""
    if high < low:
        return []
    if high < _TWO_63 or low >= _TWO_63:
        return [(to_i64(low), to_i64(high))]
    return [(to_i64(low), _TWO_63 - 1), (-_TWO_63, to_i64(high))]


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


REFUSAL_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
"""SQLSTATE classes where the server refused the data: data exception, integrity
constraint violation, program limit exceeded."""


def is_data_error(exc: BaseException) -> bool:
    """Whether a database error is about the data written, not about the store.

    PostgreSQL server errors are judged by their SQLSTATE class
    (:data:`REFUSAL_SQLSTATE_CLASSES`); driver-side errors by their type
    (``DataError``, ``IntegrityError``, ``ProgrammingError``, a value the driver cannot
    bind). Connection, operational and interface errors are never data errors.
    """
    # SQLAlchemy wraps driver errors; the COPY path raises the driver's own
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return state[:2] in REFUSAL_SQLSTATE_CLASSES
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return False
    # PEP 249 exception names (driver-side refusals carry no SQLSTATE)
    names = {cls.__name__ for cls in type(orig).__mro__}
    if names & {"OperationalError", "InterfaceError", "InternalError"}:
        return False
    if names & {"DataError", "IntegrityError", "ProgrammingError"}:
        return True
    if isinstance(exc, sa.exc.StatementError):
        return not isinstance(exc.orig, OSError)
    if isinstance(exc, (sa.exc.SQLAlchemyError, OSError, MemoryError)):
        return False
    return isinstance(exc, (ValueError, TypeError, OverflowError, KeyError))


def _site_rows(conn: sa.Connection) -> list[sa.Row[Any]]:
    inspector = sa.inspect(conn)
    if not inspector.has_table("sites"):
        return []
    sites = sa.Table("sites", sa.MetaData(), autoload_with=conn)
    return list(conn.execute(sa.select(sites)))


def registry_from_rows(rows: Iterable[Mapping[str, Any]]) -> SiteRegistry:
    """Build a :class:`SiteRegistry` from ``sites`` rows (id, market, config JSON).

    Rows whose config cannot describe a battery are skipped with a warning (their
    telemetry lands in quarantine as ``unknown_site``).
    """
    specs: list[SiteSpec] = []
    for row in rows:
        config = row.get("config") or {}
        if isinstance(config, str):
            config = json.loads(config)
        merged = {"market": row.get("market"), **config, "id": row.get("id")}
        try:
            specs.append(site_spec_from(merged))
        except TelemetryInputError as exc:
            logger.warning("site %s skipped by telemetry: %s", row.get("id"), exc)
    return SiteRegistry.of(specs)


def load_registry(conn: sa.Connection) -> SiteRegistry:
    """Return the known sites from the ``sites`` table (empty if it does not exist)."""
    return registry_from_rows(dict(r._mapping) for r in _site_rows(conn))


def _sample_row(sample: Sample, received_at_ms: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "site_id": sample.site_id,
        "dev_id": sample.dev_id,
        "ts_ms": sample.ts_ms,
        "seq": sample.seq,
        "sid": sample.sid,
        "hist": sample.hist,
        "q": sample.q,
        "flags": sample.flags,
        "payload_hash": sample.payload_hash,
        "received_at_ms": received_at_ms,
    }
    extra = {}
    for key, value in sample.m.items():
        if key in _COLUMNS:
            row[key] = None if value is None else float(value)
        else:
            extra[key] = value
    for key in _COLUMNS:
        row.setdefault(key, None)
    row["m_extra"] = extra or None
    return row


_INSERT_COLUMNS = (
    "site_id",
    "dev_id",
    "ts_ms",
    "seq",
    "sid",
    "hist",
    "q",
    "flags",
    "payload_hash",
    "received_at_ms",
    *tt.MEASUREMENT_COLUMNS,
    "m_extra",
)
_ROWS_PER_STATEMENT = 400


def _insert_samples(
    conn: sa.Connection, samples: list[Sample], received_at_ms: int
) -> set[tuple[str, str, int]]:
    """Insert-or-ignore ``samples``; return the keys NOT inserted (already stored).

    One multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` per 400 rows through
    the driver: the per-row overhead of the SQL expression layer was the ingest's
    largest cost.
    """
    pg = conn.dialect.name == "postgresql"
    if pg and _copy_capable(conn):
        return _copy_samples(conn, samples, received_at_ms)
    mark = "%s" if pg else "?"
    json_mark = "%s::jsonb" if pg else "?"
    one = "(" + ", ".join([mark] * (len(_INSERT_COLUMNS) - 1) + [json_mark]) + ")"
    head = f"INSERT INTO tlm_measurements ({', '.join(_INSERT_COLUMNS)}) VALUES "
    tail = (
        " ON CONFLICT (site_id, dev_id, ts_ms) DO NOTHING"
        " RETURNING site_id, dev_id, ts_ms"
    )
    inserted: set[tuple[str, str, int]] = set()
    for start in range(0, len(samples), _ROWS_PER_STATEMENT):
        chunk = samples[start : start + _ROWS_PER_STATEMENT]
        params: list[Any] = []
        for sample in chunk:
            m = sample.m
            extra = {k: v for k, v in m.items() if k not in _COLUMNS}
            params += [
                sample.site_id,
                sample.dev_id,
                sample.ts_ms,
                to_i64(sample.seq),
                to_i64(sample.sid),
                sample.hist,
                sample.q,
                sample.flags,
                sample.payload_hash,
                received_at_ms,
            ]
            params += [
                None if m.get(k) is None else float(m[k])
                for k in tt.MEASUREMENT_COLUMNS
            ]
            params.append(json.dumps(extra) if extra else None)
        sql = head + ", ".join([one] * len(chunk)) + tail
        result = conn.exec_driver_sql(sql, tuple(params))
        inserted.update((r[0], r[1], int(r[2])) for r in result)
    keys = ((s.site_id, s.dev_id, s.ts_ms) for s in samples)
    return {k for k in keys if k not in inserted}


def _text(value: str) -> str:
    """Return ``value`` without control characters (every store can hold it)."""
    if value.isprintable():
        return value
    return "".join(ch if ch >= " " and ch != "\x7f" else "\ufffd" for ch in value)


_STAGE = "tlm_stage"
_COLS = ", ".join(_INSERT_COLUMNS)
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(LIKE tlm_measurements INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
# COPY sends the columns in telemetry.compiled.COPY_COLUMNS' order: the compiled path
# builds each sample's binary row (all but received_at_ms, last) when it validates it
_COPY_COLS = ", ".join(COPY_COLUMNS)
_COPY_STAGE = f"COPY {_STAGE} ({_COPY_COLS}) FROM STDIN (FORMAT BINARY)"
# the CTE empties the stage in the same statement (reprocess writes several times in
# one transaction); it answers with the keys that were already stored (usually none),
# so the rows inserted need not travel back
_MOVE_STAGE = (
    f"WITH staged AS (DELETE FROM {_STAGE} RETURNING {_COLS}), "
    f"ins AS (INSERT INTO tlm_measurements ({_COLS}) SELECT {_COLS} FROM staged "
    "ON CONFLICT (site_id, dev_id, ts_ms) DO NOTHING RETURNING site_id, dev_id, ts_ms) "
    "SELECT s.site_id, s.dev_id, s.ts_ms FROM staged s WHERE NOT EXISTS "
    "(SELECT 1 FROM ins i WHERE i.site_id = s.site_id AND i.dev_id = s.dev_id "
    "AND i.ts_ms = s.ts_ms)"
)
_json_bytes = msgspec.json.Encoder().encode


def _copy_capable(conn: sa.Connection) -> bool:
    driver = conn.connection.driver_connection
    return hasattr(driver, "cursor") and conn.dialect.driver == "psycopg"


_COPY_DIRECT = f"COPY tlm_measurements ({_COPY_COLS}) FROM STDIN (FORMAT BINARY)"
_STAGED_AFTER_DUPLICATE = 20
"""Batches written through the stage after a direct ``COPY`` met a stored key."""


class _CopyMode:
    """Per-process memory of whether direct ``COPY`` met stored keys lately."""

    staged_left = 0


def _copy_row(sample: Sample) -> bytes:
    """Build the binary ``COPY`` row of a sample validation built none for."""
    return copy_record_of(
        sample.site_id,
        sample.dev_id,
        sample.ts_ms,
        sample.seq,
        sample.sid,
        sample.hist,
        sample.q,
        sample.flags,
        sample.payload_hash,
        sample.m,
    )


_COPY_ROWS_PER_WRITE = 4096
"""Rows joined per ``COPY`` write (~1.3 MB): a batch is not copied whole in memory."""


def _write_copy(cur: Any, sql: str, samples: list[Sample], received_at_ms: int) -> None:
    """``COPY`` the samples: their binary rows joined, ``received_at_ms`` appended."""
    received = b"\x00\x00\x00\x08" + received_at_ms.to_bytes(8, "big", signed=True)
    rows = [s.row or _copy_row(s) for s in samples]
    if not rows:
        return
    with cur.copy(sql) as copy:
        write = copy.write
        write(COPY_SIGNATURE)
        for start in range(0, len(rows), _COPY_ROWS_PER_WRITE):
            write(received.join(rows[start : start + _COPY_ROWS_PER_WRITE]) + received)
        write(COPY_TRAILER)


def _copy_samples(
    conn: sa.Connection, samples: list[Sample], received_at_ms: int
) -> set[tuple[str, str, int]]:
    """PostgreSQL: binary ``COPY`` of the batch; return the keys already stored.

    First straight into ``tlm_measurements`` under a savepoint: nearly every batch
    holds only new keys, and the server then writes each row once. When a key is
    already stored (a redelivery, a ``hist`` replay) the savepoint is rolled back and
    the batch goes through a temporary stage and one ``INSERT … SELECT … ON CONFLICT
    DO NOTHING`` that answers with the keys already stored; the next
    :data:`_STAGED_AFTER_DUPLICATE` batches take the stage directly. ``COPY … (FORMAT
    BINARY)`` sends typed values: no text formatting here, no parsing on the server.
    """
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cur:
        set_json_dumps(_json_bytes, cur)
        if _CopyMode.staged_left <= 0:
            cur.execute("SAVEPOINT tlm_copy")
            try:
                _write_copy(cur, _COPY_DIRECT, samples, received_at_ms)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK TO SAVEPOINT tlm_copy")
                _CopyMode.staged_left = _STAGED_AFTER_DUPLICATE
            else:
                cur.execute("RELEASE SAVEPOINT tlm_copy")
                return set()
        _CopyMode.staged_left -= 1
        cur.execute(_CREATE_STAGE)
        _write_copy(cur, _COPY_STAGE, samples, received_at_ms)
        cur.execute(_MOVE_STAGE)
        return {(r[0], r[1], int(r[2])) for r in cur.fetchall()}


def _quarantine_row(q: Quarantined, received_at_ms: int) -> dict[str, Any]:
    site = _text(q.site_from_topic)[:64] if q.site_from_topic else None
    return {
        "received_at_ms": received_at_ms,
        "topic": _text(q.topic[:1000]),
        "qos": q.qos,
        "dup": q.dup,
        "payload": q.payload,
        "reason": q.reason,
        "detail": _text(q.detail),
        "site_from_topic": site,
        "schema_v": q.schema_v,
        "reprocessed_at_ms": None,
    }


def _conflict(sample: Sample, existing_hash: str) -> Quarantined:
    body = {
        "site": sample.site_id,
        "dev": sample.dev_id,
        "sid": sample.sid,
        "seq": sample.seq,
        "ts": sample.ts_ms,
        "hist": sample.hist,
        "q": sample.q,
        "m": sample.m,
    }
    return Quarantined(
        topic=f"bess/v1/_/{sample.site_id}/up/tlm/{sample.dev_id}",
        payload=json.dumps(body, separators=(",", ":")).encode(),
        reason="conflict_dup",
        detail=(
            f"key ({sample.site_id}, {sample.dev_id}, {sample.ts_ms}) stored with hash "
            f"{existing_hash}, new hash {sample.payload_hash} (first write wins)"
        ),
        site_from_topic=sample.site_id,
        schema_v=1,
    )


_site_of = attrgetter("site_id")


def _same_content(sample: Sample, stored_hash: str) -> bool:
    """Whether a stored row's hash is this sample's (or its pre-compiled-path hash)."""
    if stored_hash == sample.payload_hash:
        return True
    # rows stored by the previous compiled path carry the canonical-JSON hash, rows
    # stored before it the legacy hash (of the values sent; a clamped SoC/SoH is
    # compared as stored)
    args = (sample.seq, sample.ts_ms, sample.q, sample.m)
    return stored_hash in (previous_payload_hash(*args), legacy_payload_hash(*args))


def _existing_hashes(
    conn: sa.Connection, groups: Mapping[tuple[str, str], list[int]]
) -> list[tuple[str, str, int, str]]:
    """Return ``(site, dev, ts, payload_hash)`` of the stored rows among ``groups``.

    One primary-key lookup per device: duplicates are rare (redeliveries, replays).
    """
    m = tt.tlm_measurements
    out: list[tuple[str, str, int, str]] = []
    for (site, dev), stamps in groups.items():
        rows = conn.execute(
            sa.select(m.c.ts_ms, m.c.payload_hash).where(
                m.c.site_id == site, m.c.dev_id == dev, m.c.ts_ms.in_(stamps)
            )
        ).all()
        out += [(site, dev, int(ts), stored_hash) for ts, stored_hash in rows]
    return out


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :func:`write_samples` did."""

    inserted: int
    duplicates: int
    conflicts: int


def write_samples(
    conn: sa.Connection,
    *,
    samples: list[Sample],
    quarantined: list[Quarantined],
    received_at_ms: int,
) -> WriteResult:
    """Insert samples idempotently on (site, dev, ts), quarantine and latest state.

    Same-key samples with the same ``payload_hash`` are duplicates (absorbed); with a
    different hash they are quarantined as ``conflict_dup`` (first write wins).
    """
    by_key: dict[tuple[str, str, int], Sample] = {}
    conflicts: list[Quarantined] = []
    duplicates: dict[str, int] = defaultdict(int)
    for sample in samples:
        key = (sample.site_id, sample.dev_id, sample.ts_ms)
        first = by_key.get(key)
        if first is None:
            by_key[key] = sample
            continue
        if first.payload_hash == sample.payload_hash:
            duplicates[sample.site_id] += 1
        else:
            conflicts.append(_conflict(sample, first.payload_hash))
    new: list[Sample] = []
    if by_key:
        # insert first; the rare keys that already existed are classified afterwards
        skipped = _insert_samples(conn, list(by_key.values()), received_at_ms)
        if not skipped:
            new = list(by_key.values())
        else:
            new = [s for k, s in by_key.items() if k not in skipped]
            groups: dict[tuple[str, str], list[int]] = defaultdict(list)
            for site, dev, ts in skipped:
                groups[(site, dev)].append(ts)
            for site, dev, ts, stored_hash in _existing_hashes(conn, groups):
                sample = by_key[(site, dev, int(ts))]
                if _same_content(sample, stored_hash):
                    duplicates[site] += 1
                else:
                    conflicts.append(_conflict(sample, stored_hash))
        if new:
            _upsert_latest(conn, new, received_at_ms)
    all_q = quarantined + conflicts
    if all_q:
        conn.execute(
            sa.insert(tt.tlm_quarantine),
            [_quarantine_row(q, received_at_ms) for q in all_q],
        )
    stored = Counter(map(_site_of, new))
    sites = set(stored) | set(duplicates)
    if sites:
        stmt = _insert(conn, tt.tlm_counters)
        stmt = stmt.on_conflict_do_update(
            index_elements=["site_id"],
            set_={
                "stored": tt.tlm_counters.c.stored + stmt.excluded.stored,
                "duplicates": tt.tlm_counters.c.duplicates + stmt.excluded.duplicates,
                "updated_at_ms": stmt.excluded.updated_at_ms,
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "site_id": site,
                    "stored": stored.get(site, 0),
                    "duplicates": duplicates.get(site, 0),
                    "updated_at_ms": received_at_ms,
                }
                for site in sorted(sites)
            ],
        )
    return WriteResult(len(new), sum(duplicates.values()), len(conflicts))


_LATEST_COLS = ("ts_ms", "seq", "sid", "q", "flags", "soc_pct", "p_dc_w", "p_ac_w", "m")
"""Columns of ``tlm_latest`` an upsert refreshes (besides ``updated_at_ms``)."""


def _newest(samples: Iterable[Sample]) -> list[Sample]:
    """Return the newest sample of each device (site, dev)."""
    newest: dict[tuple[str, str], Sample] = {}
    for s in samples:
        key = (s.site_id, s.dev_id)
        if key not in newest or s.ts_ms > newest[key].ts_ms:
            newest[key] = s
    return list(newest.values())


def _latest_row(s: Sample, now: int) -> dict[str, Any]:
    return {
        "site_id": s.site_id,
        "dev_id": s.dev_id,
        "ts_ms": s.ts_ms,
        "seq": to_i64(s.seq),
        "sid": to_i64(s.sid),
        "q": s.q,
        "flags": s.flags,
        "soc_pct": s.m.get("soc_pct"),
        "p_dc_w": s.m.get("p_dc_w"),
        "p_ac_w": s.m.get("p_ac_w"),
        "m": s.m,
        "updated_at_ms": now,
    }


def _upsert_latest(conn: sa.Connection, new: list[Sample], received_at_ms: int) -> None:
    latest = tt.tlm_latest
    stmt = _insert(conn, latest)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "dev_id"],
        set_={
            **{c: stmt.excluded[c] for c in _LATEST_COLS},
            "updated_at_ms": stmt.excluded.updated_at_ms,
        },
        where=latest.c.ts_ms < stmt.excluded.ts_ms,
    )
    conn.execute(stmt, [_latest_row(s, received_at_ms) for s in _newest(new)])


def _track_row(t: Track, now: int) -> dict[str, Any]:
    return {
        "site_id": t.site_id,
        "dev_id": t.dev_id,
        "epoch": t.epoch,
        "contiguous_seq": to_i64(t.contiguous_seq),
        "contiguous_ts_ms": t.contiguous_ts_ms,
        "max_seq_seen": to_i64(t.max_seq_seen),
        "max_ts_ms": t.max_ts_ms,
        "first_gap_seen_at_ms": t.first_gap_seen_at_ms,
        "backfill_requested_at_ms": t.backfill_requested_at_ms,
        "backfill_attempts": t.backfill_attempts,
        "updated_at_ms": now,
    }


def save_tracks(conn: sa.Connection, *, tracks: Iterable[Track], now: int) -> None:
    """Upsert gap-tracker rows."""
    rows = [_track_row(t, now) for t in tracks]
    if not rows:
        return
    stmt = _insert(conn, tt.tlm_seq_tracker)
    stmt = stmt.on_conflict_do_update(
        index_elements=["site_id", "dev_id"],
        set_={k: stmt.excluded[k] for k in rows[0] if k not in ("site_id", "dev_id")},
    )
    conn.execute(stmt, rows)


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def audit(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None,
    detail: dict[str, Any] | None,
) -> None:
    """Append to the audit log in the caller's transaction."""
    audit_record(
        conn,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        detail=detail,
    )


def record_setpoint(
    conn: sa.Connection,
    *,
    setpoint: SetpointPayload,
    schedule_version: int | None = None,
    actor: str = "system",
) -> None:
    """Store a sent setpoint (status ``sent``) and append it to the audit log."""
    conn.execute(
        sa.insert(metadata.tables["setpoints"]),
        {
            "cmd_id": setpoint.cmd_id,
            "site_id": setpoint.site,
            "issued_ts": _utc(setpoint.issued_ts),
            "valid_from": _utc(setpoint.valid_from),
            "expires_at": _utc(setpoint.expires_at),
            "p_ac_w_setpoint": setpoint.p_ac_w_setpoint,
            "schedule_version": schedule_version,
            "status": "sent",
            "ack_ts": None,
            "reason": None,
        },
    )
    audit(
        conn,
        actor=actor,
        action="setpoint.sent",
        object_type="setpoint",
        object_id=setpoint.cmd_id,
        detail=setpoint.model_dump(mode="json"),
    )


def record_refused_setpoint(
    conn: sa.Connection, *, site_id: str, detail: dict[str, Any], reason: str
) -> None:
    """Append a setpoint refused before sending (outside the site's limits)."""
    audit(
        conn,
        actor="system",
        action="setpoint.refused",
        object_type="setpoint",
        object_id=site_id,
        detail={**detail, "reason": reason},
    )


def record_ack(conn: sa.Connection, *, ack: AckPayload) -> None:
    """Record a gateway's command result on its setpoint row and in the audit log."""
    setpoints = metadata.tables.get("setpoints")
    if setpoints is not None:
        conn.execute(
            sa.update(setpoints)
            .where(setpoints.c.cmd_id == ack.cmd_id)
            .values(status=ack.status, ack_ts=_utc(ack.ts), reason=ack.reason)
        )
    audit(
        conn,
        actor=f"site:{ack.site}",
        action=f"setpoint.{ack.status}",
        object_type="setpoint",
        object_id=ack.cmd_id,
        detail=ack.model_dump(mode="json"),
    )


def commit_batch(conn: sa.Connection, *, batch: Batch) -> WriteResult:
    """Write one ingest batch (inside the caller's transaction)."""
    now = batch.received_at_ms
    result = write_samples(
        conn,
        samples=batch.samples,
        quarantined=batch.quarantined,
        received_at_ms=now,
    )
    save_tracks(conn, tracks=batch.tracks.values(), now=now)
    if batch.sessions:
        sess = tt.tlm_site_sessions
        for change in batch.sessions:
            if change.birth is not None:
                stmt = _insert(conn, sess)
                values = {
                    "site_id": change.site_id,
                    "grp": change.group,
                    "sid": to_i64(change.sid),
                    "online": change.online,
                    "birth_ts_ms": change.birth_ts_ms,
                    "state_ts_ms": change.state_ts_ms,
                    "birth": change.birth,
                    "updated_at_ms": now,
                }
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["site_id"],
                        set_={k: v for k, v in values.items() if k != "site_id"},
                    ),
                    values,
                )
            else:
                conn.execute(
                    sa.update(sess)
                    .where(
                        sess.c.site_id == change.site_id,
                        sess.c.sid == to_i64(change.sid),
                    )
                    .values(
                        online=change.online,
                        state_ts_ms=change.state_ts_ms,
                        updated_at_ms=now,
                    )
                )
    if batch.events:
        conn.execute(
            sa.insert(tt.tlm_events),
            [
                {
                    "site_id": e.site,
                    "ts_ms": e.ts,
                    "sid": to_i64(e.sid),
                    "kind": e.kind,
                    "dev_id": e.dev,
                    "code": e.code,
                    "detail": e.detail,
                    "received_at_ms": now,
                }
                for e in batch.events
            ],
        )
    if batch.gaps:
        conn.execute(
            sa.insert(tt.tlm_gaps),
            [
                {
                    "site_id": g.site_id,
                    "dev_id": g.dev_id,
                    "epoch": g.epoch,
                    "from_seq": to_i64(g.from_seq),
                    "to_seq": to_i64(g.to_seq),
                    "recorded_at_ms": now,
                    "reason": g.reason,
                }
                for g in batch.gaps
            ],
        )
    for ack in batch.acks:
        record_ack(conn, ack=ack)
    return result


def load_tracks(conn: sa.Connection) -> list[Track]:
    """Return the persisted gap tracks with their stored seqs above the watermark."""
    tr = tt.tlm_seq_tracker
    m = tt.tlm_measurements
    tracks = []
    for row in conn.execute(sa.select(tr)).mappings():
        track = Track(
            site_id=row["site_id"],
            dev_id=row["dev_id"],
            epoch=row["epoch"],
            contiguous_seq=_watermark_from_i64(row["contiguous_seq"]),
            contiguous_ts_ms=row["contiguous_ts_ms"],
            max_seq_seen=_watermark_from_i64(row["max_seq_seen"]),
            max_ts_ms=row["max_ts_ms"],
            first_gap_seen_at_ms=row["first_gap_seen_at_ms"],
            backfill_requested_at_ms=row["backfill_requested_at_ms"],
            backfill_attempts=row["backfill_attempts"],
        )
        if track.max_seq_seen > track.contiguous_seq:
            for low, high in i64_ranges(track.contiguous_seq + 1, track.max_seq_seen):
                above = conn.execute(
                    sa.select(m.c.seq, m.c.ts_ms).where(
                        m.c.site_id == track.site_id,
                        m.c.dev_id == track.dev_id,
                        m.c.seq >= low,
                        m.c.seq <= high,
                    )
                ).all()
                track.pending.update({from_i64(int(q)): int(ts) for q, ts in above})
        tracks.append(track)
    return tracks


_UPSERT_LATEST = (
    "INSERT INTO tlm_latest (site_id, dev_id, ts_ms, seq, sid, q, flags, soc_pct, "
    "p_dc_w, p_ac_w, m, updated_at_ms) "
    "SELECT s, d, t, sq, si, q, f, soc, pdc, pac, m::jsonb, %s FROM unnest("
    "%s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[], %s::text[], "
    "%s::int4[], %s::float8[], %s::float8[], %s::float8[], %s::text[]) "
    "AS u(s, d, t, sq, si, q, f, soc, pdc, pac, m) "
    "ON CONFLICT (site_id, dev_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _LATEST_COLS)
    + ", updated_at_ms = excluded.updated_at_ms "
    "WHERE tlm_latest.ts_ms < excluded.ts_ms"
)
_UPSERT_COUNTERS = (
    "INSERT INTO tlm_counters (site_id, stored, duplicates, updated_at_ms) "
    "SELECT s, n, 0, %s FROM unnest(%s::text[], %s::int8[]) AS u(s, n) "
    "ON CONFLICT (site_id) DO UPDATE SET stored = tlm_counters.stored + excluded.stored, "
    "updated_at_ms = excluded.updated_at_ms"
)
_TRACK_COLS = (
    "epoch",
    "contiguous_seq",
    "contiguous_ts_ms",
    "max_seq_seen",
    "max_ts_ms",
    "first_gap_seen_at_ms",
    "backfill_requested_at_ms",
    "backfill_attempts",
)
_UPSERT_TRACKS = (
    "INSERT INTO tlm_seq_tracker (site_id, dev_id, epoch, contiguous_seq, "
    "contiguous_ts_ms, max_seq_seen, max_ts_ms, first_gap_seen_at_ms, "
    "backfill_requested_at_ms, backfill_attempts, updated_at_ms) "
    "SELECT s, d, e, cs, ct, ms, mt, fg, br, ba, %s FROM unnest(%s::text[], "
    "%s::text[], %s::int4[], %s::int8[], %s::int8[], %s::int8[], %s::int8[], "
    "%s::int8[], %s::int8[], %s::int4[]) AS u(s, d, e, cs, ct, ms, mt, fg, br, ba) "
    "ON CONFLICT (site_id, dev_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _TRACK_COLS)
    + ", updated_at_ms = excluded.updated_at_ms"
)
_INSERT_QUARANTINE = (
    "INSERT INTO tlm_quarantine (received_at_ms, topic, qos, dup, payload, reason, "
    "detail, site_from_topic, schema_v, reprocessed_at_ms) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, NULL)"
)


_HELD_IDLE_S = 5.0
"""An empty transaction opened ahead on the held connection is rolled back and
reopened after this long [s] (an ``idle_in_transaction_session_timeout`` would end
the session)."""


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _arrays(rows: list[dict[str, Any]], columns: Iterable[str]) -> list[list[Any]]:
    """Return the rows as one array per column, in ``columns`` order (for ``unnest``)."""
    return [[row[c] for row in rows] for c in columns]


def _fast_eligible(batch: Batch) -> bool:
    """Whether a batch is plain samples (+ quarantine, tracks): the common case.

    A key twice in the batch makes the direct ``COPY`` fail like a stored one does.
    """
    return not (batch.sessions or batch.events or batch.gaps or batch.acks)


def _commit_fast(pg: Any, batch: Batch) -> bool:
    """Commit a plain batch in three round trips on an autocommit psycopg connection.

    The caller has opened the transaction (``BEGIN``). ``COPY`` of the samples (the
    copy's start and end), then one pipeline with the latest-state, counter,
    gap-track (and quarantine) writes, the ``COMMIT`` and the next batch's ``BEGIN``.
    Each write is one statement over arrays (``unnest``), not one row per statement
    through the SQL expression layer. Returns ``False``, with the transaction rolled
    back (none open), when a sample's key is already stored or twice in the batch:
    the caller then takes :func:`commit_batch`, which sorts duplicates from
    conflicts.
    """
    now = batch.received_at_ms
    samples = batch.samples
    with pg.cursor() as cur:
        set_json_dumps(_json_bytes, cur)
        if samples:
            try:
                _write_copy(cur, _COPY_DIRECT, samples, now)
            except psycopg.errors.UniqueViolation:
                cur.execute("ROLLBACK")
                _CopyMode.staged_left = _STAGED_AFTER_DUPLICATE
                return False
        latest = [_latest_row(s, now) for s in _newest(samples)]
        for row in latest:
            row["m"] = _json_bytes(row["m"]).decode()
            for c in ("soc_pct", "p_dc_w", "p_ac_w"):
                row[c] = _float_or_none(row[c])
        stored = Counter(map(_site_of, samples))
        tracks = [_track_row(t, now) for t in batch.tracks.values()]
        keys = ("site_id", "dev_id")
        with pg.pipeline():
            if latest:
                cur.execute(
                    _UPSERT_LATEST, (now, *_arrays(latest, (*keys, *_LATEST_COLS)))
                )
                cur.execute(
                    _UPSERT_COUNTERS, (now, list(stored), list(stored.values()))
                )
            if tracks:
                cur.execute(
                    _UPSERT_TRACKS, (now, *_arrays(tracks, (*keys, *_TRACK_COLS)))
                )
            if batch.quarantined:
                cur.executemany(
                    _INSERT_QUARANTINE,
                    [
                        tuple(_quarantine_row(q, now).values())[:-1]
                        for q in batch.quarantined
                    ],
                )
            cur.execute("COMMIT")
            cur.execute("BEGIN")
    return True


class SqlTelemetrySink:
    """The ingest's store: one transaction per batch on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._fast = engine.dialect.name == "postgresql" and (
            engine.dialect.driver == "psycopg"
        )
        self._held: Any = None
        """A pooled connection kept for :meth:`commit` (PostgreSQL): no checkout, no
        ping and no reset per batch."""
        self._open_since: float | None = None
        """When the held connection's open (empty) transaction began [monotonic s]."""

    @classmethod
    def from_url(cls, url: str) -> SqlTelemetrySink:
        """Open the store at ``url``."""
        return cls(make_engine(url))

    def stored_seqs(
        self,
        site_id: str,
        dev_id: str,
        from_seq: int,
        to_seq: int,
        limit: int = 100_000,
    ) -> list[tuple[int, int]]:
        """Return ``(seq, ts_ms)`` of the stored samples of a device in a seq range."""
        m = tt.tlm_measurements
        out: list[tuple[int, int]] = []
        with self.engine.connect() as conn:
            for low, high in i64_ranges(from_seq, to_seq):
                query = (
                    sa.select(m.c.seq, m.c.ts_ms)
                    .where(
                        m.c.site_id == site_id,
                        m.c.dev_id == dev_id,
                        m.c.seq >= low,
                        m.c.seq <= high,
                    )
                    .order_by(m.c.seq)
                    .limit(limit - len(out))
                )
                out += [(from_i64(int(q)), int(ts)) for q, ts in conn.execute(query)]
                if len(out) >= limit:
                    break
        return out

    def load(self) -> SinkState:
        """Return the registry, sessions, births and gap tracks."""
        try:
            with self.engine.connect() as conn:
                registry = load_registry(conn)
                sessions: dict[str, Session] = {}
                births: dict[str, BirthPayload] = {}
                for row in conn.execute(sa.select(tt.tlm_site_sessions)).mappings():
                    sessions[row["site_id"]] = Session(
                        from_i64(row["sid"]), row["birth_ts_ms"], row["online"]
                    )
                    try:
                        births[row["site_id"]] = BirthPayload.model_validate(
                            row["birth"]
                        )
                    except ValueError:
                        logger.warning(
                            "stored birth of %s no longer valid", row["site_id"]
                        )
                tracks = load_tracks(conn)
        except sa.exc.SQLAlchemyError as exc:
            msg = f"cannot read the telemetry state from the store: {exc}"
            raise StoreError(msg) from exc
        return SinkState(registry, sessions, births, tracks)

    def load_registry(self) -> SiteRegistry:
        """Return the known sites."""
        with self.engine.connect() as conn:
            return load_registry(conn)

    def commit(self, batch: Batch) -> None:
        """Write ``batch`` in one transaction (raises on a database error).

        On PostgreSQL a plain batch (samples, quarantine, gap tracks) goes through
        :func:`_commit_fast` on a held connection; anything else, or a batch whose
        keys are partly stored, through :func:`commit_batch`.
        """
        if (
            self._fast
            and _CopyMode.staged_left <= 0
            and _fast_eligible(batch)
            and self._commit_held(batch)
        ):
            return
        with self.engine.begin() as conn:
            commit_batch(conn, batch=batch)

    def _commit_held(self, batch: Batch) -> bool:
        if self._held is None:
            held = self.engine.connect()  # connection errors come wrapped, as before
            # transactions are explicit: the next BEGIN rides in the pipeline of
            # the previous COMMIT instead of costing a round trip of its own
            driver: Any = held.connection.driver_connection
            driver.autocommit = True
            self._held, self._open_since = held, None
        held = self._held
        pg = held.connection.driver_connection
        try:
            if (
                self._open_since is not None
                and time.monotonic() - self._open_since > _HELD_IDLE_S
            ):
                pg.execute("ROLLBACK")  # not left open across a quiet spell
                self._open_since = None
            if self._open_since is None:
                pg.execute("BEGIN")
            done = _commit_fast(pg, batch)
        except BaseException:
            # the next batch starts on a fresh (pinged) connection
            self._held = self._open_since = None
            with contextlib.suppress(Exception):
                held.invalidate()
            raise
        self._open_since = time.monotonic() if done else None
        return done

    def close(self) -> None:
        """Return the held connection to the pool."""
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):
                pg = held.connection.driver_connection
                if self._open_since is not None:
                    pg.execute("ROLLBACK")
                pg.autocommit = False
                held.close()
        self._open_since = None

    def save_tracks(self, tracks: Mapping[tuple[str, str], Track], now_ms: int) -> None:
        """Persist the tracker's bookkeeping."""
        with self.engine.begin() as conn:
            save_tracks(conn, tracks=tracks.values(), now=now_ms)

    def is_refusal(self, exc: Exception) -> bool:
        """Whether the store is up and refused the data of a failed :meth:`commit`.

        Refusals are data errors (SQLSTATE classes 22, 23, 54, or a driver that cannot
        adapt a value, e.g. a NUL in a PostgreSQL text); the ingest then isolates the
        offending message. Connection loss, disk full, locks and every other error
        are outages: the stream is held. A refusal is confirmed by a round trip to the
        store, so an error during an outage is never mistaken for one.
        """
        if not is_data_error(exc):
            return False
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True


# -- read side ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteStats:
    """Telemetry figures of one site."""

    site_id: str
    rows_stored: int
    duplicates_absorbed: int
    quarantined: dict[str, int]
    """Quarantine rows (not successfully reprocessed) by reason."""
    gaps_open: int
    """Devices with seqs missing above their watermark."""
    permanent_gaps: int
    latest_ts_ms: int | None
    """Newest sample time [ms, UTC]."""
    complete_until_ts_ms: int | None
    """Completeness watermark [ms, UTC]."""
    online: bool | None


def completeness_watermarks(conn: sa.Connection) -> dict[str, int | None]:
    """Return each site's ``complete_until_ts`` [ms, UTC]: every sample before it is stored.

    It is the minimum over the site's devices of the sample time at the device's
    contiguous-seq watermark; downstream code must not treat later gaps as zero.
    """
    tr = tt.tlm_seq_tracker
    out: dict[str, int | None] = {}
    rows = conn.execute(sa.select(tr.c.site_id, tr.c.contiguous_ts_ms)).all()
    for site, ts in rows:
        if site not in out:
            out[site] = ts
        elif out[site] is None or ts is None:
            out[site] = None
        else:
            out[site] = min(out[site] or 0, ts)
    return out


def telemetry_stats(conn: sa.Connection) -> list[SiteStats]:
    """Return per-site telemetry figures (quarantine rows without a site under ``?``)."""
    q = tt.tlm_quarantine
    counters = {
        r.site_id: (r.stored, r.duplicates)
        for r in conn.execute(sa.select(tt.tlm_counters))
    }
    quarantined: dict[str, dict[str, int]] = defaultdict(dict)
    for site, reason, n in conn.execute(
        sa.select(q.c.site_from_topic, q.c.reason, sa.func.count())
        .where(q.c.reprocessed_at_ms.is_(None))
        .group_by(q.c.site_from_topic, q.c.reason)
    ):
        quarantined[site or "?"][reason] = int(n)
    tr = tt.tlm_seq_tracker
    gaps_open: dict[str, int] = defaultdict(int)
    for site, n in conn.execute(
        sa.select(tr.c.site_id, sa.func.count())
        .where(tr.c.max_seq_seen > tr.c.contiguous_seq)
        .group_by(tr.c.site_id)
    ):
        gaps_open[site] = int(n)
    perm: dict[str, int] = {
        site: int(n)
        for site, n in conn.execute(
            sa.select(tt.tlm_gaps.c.site_id, sa.func.count()).group_by(
                tt.tlm_gaps.c.site_id
            )
        )
    }
    latest: dict[str, int] = {
        site: int(ts)
        for site, ts in conn.execute(
            sa.select(
                tt.tlm_latest.c.site_id, sa.func.max(tt.tlm_latest.c.ts_ms)
            ).group_by(tt.tlm_latest.c.site_id)
        )
    }
    online = {
        r.site_id: bool(r.online) for r in conn.execute(sa.select(tt.tlm_site_sessions))
    }
    marks = completeness_watermarks(conn)
    sites = sorted(
        set(counters) | set(quarantined) | set(gaps_open) | set(latest) | set(online)
    )
    return [
        SiteStats(
            site_id=site,
            rows_stored=counters.get(site, (0, 0))[0],
            duplicates_absorbed=counters.get(site, (0, 0))[1],
            quarantined=dict(sorted(quarantined.get(site, {}).items())),
            gaps_open=gaps_open.get(site, 0),
            permanent_gaps=perm.get(site, 0),
            latest_ts_ms=latest.get(site),
            complete_until_ts_ms=marks.get(site),
            online=online.get(site),
        )
        for site in sites
    ]


@dataclass(frozen=True, slots=True)
class ReprocessResult:
    """What a reprocess run did."""

    examined: int
    stored: int
    """Quarantine rows that now validated and were written."""
    still_bad: int


def reprocess(
    engine: sa.Engine,
    *,
    reason: str,
    since_ms: int | None = None,
    now: int | None = None,
) -> ReprocessResult:
    """Replay quarantine rows of ``reason`` (received at/after ``since_ms``).

    Rows that now validate are written (idempotently) and marked reprocessed; rows that
    still fail stay in quarantine untouched.
    """
    q = tt.tlm_quarantine
    now = now if now is not None else now_ms()
    examined = stored = still_bad = 0
    with engine.begin() as conn:
        registry = load_registry(conn)
        ctx = Context(registry, now)
        stmt = sa.select(q).where(q.c.reason == reason, q.c.reprocessed_at_ms.is_(None))
        if since_ms is not None:
            stmt = stmt.where(q.c.received_at_ms >= since_ms)
        for row in conn.execute(stmt.order_by(q.c.id)).mappings().all():
            examined += 1
            out = validate_message(row["topic"], bytes(row["payload"]), ctx)
            if out.quarantined or not (out.samples or out.birth or out.evt):
                still_bad += 1
                continue
            write_samples(
                conn, samples=list(out.samples), quarantined=[], received_at_ms=now
            )
            conn.execute(
                sa.update(q).where(q.c.id == row["id"]).values(reprocessed_at_ms=now)
            )
            stored += 1
    return ReprocessResult(examined, stored, still_bad)
