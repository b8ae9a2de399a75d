"""A simulated world for operating-day tests (moved to :mod:`fleet.demo.world`)."""

from fleet.demo.world import (
    CAISO_SHIFT_DAYS,
    World,
    import_replay_prices,
    load_profile,
)

__all__ = ["CAISO_SHIFT_DAYS", "World", "import_replay_prices", "load_profile"]
