"""A simulated world for operating-day tests (now :mod:`fleet.demo.world`, :mod:`fleet.data.prices`)."""

from fleet.data.prices import CAISO_SHIFT_DAYS, import_replay_prices
from fleet.demo.world import World, load_profile

__all__ = ["CAISO_SHIFT_DAYS", "World", "import_replay_prices", "load_profile"]
