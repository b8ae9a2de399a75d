"""What the meters said: interval power, SoC and liveness read from stored telemetry.

Conventions (``docs/operations.md``): the site's power conversion system ``pcs1``
reports ``p_ac_w`` at the point of interconnection, + = discharge (export); a
behind-the-meter site's ``meter1`` reports the facility load ``p_ac_w`` the battery
serves, + = consumption, so that the utility meter's import is ``load - pcs``.
Battery devices (``bank*``) report ``soc_pct``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from fleet.store.dml import Bind, transaction
from fleet.store.telemetry_tables import tlm_latest, tlm_measurements

PCS_DEVICE = "pcs1"
"""Device whose ``p_ac_w`` is the site's net AC power (+ = discharge)."""
LOAD_DEVICE = "meter1"
"""Device whose ``p_ac_w`` is a behind-the-meter facility's load (+ = consumption)."""


def interval_mean_mw(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str | None,
    start: dt.datetime,
    intervals: int,
    interval_minutes: int,
    column: str = "p_ac_w",
) -> pd.Series:
    """Return the mean of a device's measurement per interval, W converted to MW.

    ``dev_id`` None averages every device reporting the column (e.g. ``soc_pct`` of
    all banks). Intervals without a good sample are NaN (never filled: the caller
    decides).
    """
    step_ms = interval_minutes * 60_000
    t0 = int(start.timestamp() * 1000)
    t1 = t0 + intervals * step_ms
    m = tlm_measurements
    col = m.c[column]
    bucket = ((m.c.ts_ms - t0) // step_ms).label("k")
    query = (
        sa.select(bucket, sa.func.avg(col).label("v"), sa.func.count(col).label("n"))
        .where(
            m.c.site_id == site_id,
            m.c.dev_id == dev_id if dev_id is not None else sa.true(),
            m.c.ts_ms >= t0,
            m.c.ts_ms < t1,
            m.c.q == "good",
            col.is_not(None),
        )
        .group_by(bucket)
    )
    values = np.full(intervals, np.nan)
    with transaction(bind) as conn:
        for k, v, n in conn.execute(query):
            i = int(k)
            if 0 <= i < intervals and n:
                values[i] = float(v) / 1e6 if column.endswith("_w") else float(v)
    index = pd.date_range(start, periods=intervals, freq=f"{interval_minutes}min")
    return pd.Series(values, index=index)


def site_soc_at(
    bind: Bind, *, site_id: str, when: dt.datetime, window_s: float = 900.0
) -> float | None:
    """Return the mean battery SoC (0-1) of the newest good samples before ``when``."""
    t = int(when.timestamp() * 1000)
    m = tlm_measurements
    query = sa.select(sa.func.avg(m.c.soc_pct)).where(
        m.c.site_id == site_id,
        m.c.ts_ms <= t,
        m.c.ts_ms > t - int(window_s * 1000),
        m.c.soc_pct.is_not(None),
        m.c.q == "good",
    )
    with transaction(bind) as conn:
        value = conn.execute(query).scalar()
    return None if value is None else float(value) / 100.0


def last_seen_ms(bind: Bind, site_ids: Sequence[str]) -> dict[str, int]:
    """Return, per site, the time of its newest stored sample of any device [ms]."""
    query = (
        sa.select(tlm_latest.c.site_id, sa.func.max(tlm_latest.c.ts_ms))
        .where(tlm_latest.c.site_id.in_(list(site_ids)))
        .group_by(tlm_latest.c.site_id)
    )
    with transaction(bind) as conn:
        return {str(s): int(t) for s, t in conn.execute(query)}


def latest_soc(bind: Bind, site_ids: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Return per site (newest battery sample time [ms], mean SoC of its banks 0-1)."""
    query = sa.select(
        tlm_latest.c.site_id, tlm_latest.c.ts_ms, tlm_latest.c.soc_pct
    ).where(
        tlm_latest.c.site_id.in_(list(site_ids)),
        tlm_latest.c.soc_pct.is_not(None),
        tlm_latest.c.q == "good",
    )
    acc: dict[str, list[tuple[int, float]]] = {}
    with transaction(bind) as conn:
        for site_id, ts_ms, soc_pct in conn.execute(query):
            acc.setdefault(str(site_id), []).append((int(ts_ms), float(soc_pct)))
    return {
        sid: (max(t for t, _ in rows), float(np.mean([v for _, v in rows])) / 100.0)
        for sid, rows in acc.items()
    }


def write_metered(
    bind: Bind,
    *,
    site_id: str,
    dev_id: str,
    start: dt.datetime,
    interval_minutes: int,
    p_mw: Sequence[float] | np.ndarray,
    soc: Sequence[float] | np.ndarray | None = None,
    received_at_ms: int | None = None,
) -> int:
    """Store one good sample per interval of a simulated meter (backtest, replay plant).

    The sample sits at the interval's start, so :func:`interval_mean_mw` reads the value
    back for that interval. ``p_mw`` [MW] is stored as ``p_ac_w``; ``soc`` (0-1) as
    ``soc_pct``. Returns the rows written.
    """
    t0 = int(start.timestamp() * 1000)
    step = interval_minutes * 60_000
    received = received_at_ms if received_at_ms is not None else t0
    rows = []
    for i, p in enumerate(p_mw):
        ts_ms = t0 + i * step
        rows.append(
            {
                "site_id": site_id,
                "dev_id": dev_id,
                "ts_ms": ts_ms,
                "seq": i + 1,
                "sid": 1,
                "hist": False,
                "q": "good",
                "flags": 0,
                "payload_hash": f"{ts_ms:x}",
                "received_at_ms": received,
                "p_ac_w": float(p) * 1e6,
                "soc_pct": None if soc is None else float(soc[i]) * 100.0,
            }
        )
    if rows:
        with transaction(bind) as conn:
            conn.execute(sa.insert(tlm_measurements), rows)
    return len(rows)
