"""Rebuild the price and load sample shipped with the package from the shared data.

``python -m fleet.data.sample.build SHARED_DATA_DIR`` rewrites the files beside this
module (see ``README.md`` there for what they hold and where they come from).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
START = pd.Timestamp("2025-02-01", tz="UTC")
END = pd.Timestamp("2025-04-20", tz="UTC")
CAISO_SHIFT_DAYS = 1827
"""The CAISO example year (2020) is shipped 261 weeks later: same weekdays, 2025."""
ERCOT_NODES = (
    "HB_WEST",
    "HB_HOUSTON",
    "HB_NORTH",
    "HB_SOUTH",
    "HB_PAN",
    "LZ_CPS",
    "LZ_HOUSTON",
)
LOADS = {
    "industrial_load_steel_15min": ("DAEWOO_Steel_Gwangyang",),
    "building_load_cambridge_hourly": ("UCam_Building_b2", "UCam_Building_b105"),
}


def _window(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    ts = pd.to_datetime(frame["timestamp_utc"], utc=True)
    return frame[(ts >= start) & (ts < end)]


def build(shared: Path) -> None:
    """Write the sample files from ``shared`` (the shared data folder)."""
    folder = HERE / "ercot"
    folder.mkdir(exist_ok=True)
    src = shared / "ercot_rt_da_hourly_15sp_2024_2026"
    energy = pd.read_csv(src / "ercot_rt_da_hourly_15sp_2024_2026.csv.gz")
    energy = _window(energy[energy["node"].isin(ERCOT_NODES)], START, END)
    energy.to_csv(folder / "ercot_energy_sample.csv.gz", index=False)
    ancillary = _window(
        pd.read_csv(src / "ercot_dam_as_mcpc_hourly_2024_2026.csv.gz"), START, END
    )
    ancillary.to_csv(folder / "ercot_as_mcpc_sample.csv.gz", index=False)
    folder = HERE / "caiso"
    folder.mkdir(exist_ok=True)
    shift = pd.Timedelta(days=CAISO_SHIFT_DAYS)
    for path in sorted((shared / "caiso_dervet_example_2020").glob("*.csv")):
        frame = _window(pd.read_csv(path), START - shift, END - shift)
        ts = pd.to_datetime(frame["timestamp_utc"], utc=True) + shift
        frame = frame.assign(timestamp_utc=ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        frame.to_csv(folder / f"{path.stem}_replayed_2025.csv.gz", index=False)
    for name, profiles in LOADS.items():
        out = HERE / name
        out.mkdir(exist_ok=True)
        for path in sorted((shared / name).glob("*.csv")):
            frame = pd.read_csv(path)
            frame = frame[frame["site"].isin(profiles)]
            ts = pd.to_datetime(frame["timestamp_utc"], utc=True)
            doy = ts.dt.day_of_year
            keep = (doy >= START.day_of_year - 7) & (doy <= END.day_of_year + 7)
            frame[keep].to_csv(out / f"{path.stem}_sample.csv.gz", index=False)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
