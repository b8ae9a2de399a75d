"""Write telemetry frames straight into the store's measurement table."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from fleet.store.telemetry_tables import tlm_measurements

COLUMNS = (
    "soc_pct",
    "soh_pct",
    "p_dc_w",
    "cell_v_max_v",
    "cell_v_min_v",
    "cell_t_max_c",
    "cell_t_min_c",
)


def insert_samples(engine: sa.Engine, frame: pd.DataFrame) -> int:
    """Insert telemetry rows (the synthetic generator's columns); return the count."""
    rows = []
    for i, rec in enumerate(frame.to_dict("records")):
        row = {
            "site_id": rec["site_id"],
            "dev_id": rec["dev_id"],
            "ts_ms": int(rec["ts_ms"]),
            "seq": i + 1,
            "sid": 1,
            "hist": False,
            "q": rec["q"],
            "flags": 0,
            "payload_hash": f"{i:032d}",
            "received_at_ms": int(rec["ts_ms"]),
        }
        row.update({c: float(rec[c]) for c in COLUMNS if c in rec})
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(tlm_measurements.insert(), rows)
    return len(rows)
