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


def insert_samples(engine: sa.Engine, frame: pd.DataFrame, first_seq: int = 1) -> int:
    """Insert telemetry rows (the synthetic generator's columns); return the count.

    A bad sample's missing measurements (NaN) are stored as NULL, as ingest does.
    """
    rows = []
    for i, rec in enumerate(frame.to_dict("records"), start=first_seq - 1):
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
        row.update(
            {
                c: (None if pd.isna(rec[c]) else float(rec[c]))
                for c in COLUMNS
                if c in rec
            }
        )
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(tlm_measurements.insert(), rows)
    return len(rows)
