"""Clocks for the operations loop: the system clock and an accelerated one for demos."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol
from zoneinfo import ZoneInfo

from dispatch.markets import MarketRules
from fleet.errors import FleetInputError


class Clock(Protocol):
    """What the loops need from a clock: the time and a way to wait for one."""

    def now(self) -> dt.datetime:
        """Return the current (possibly simulated) time, aware UTC."""
        ...

    def sleep_until(
        self, when: dt.datetime, stop: threading.Event | None = None
    ) -> bool:
        """Wait until ``when``; return False when ``stop`` was set first."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> dt.datetime:
        """Return the current UTC time."""
        return dt.datetime.now(dt.UTC)

    def sleep_until(
        self, when: dt.datetime, stop: threading.Event | None = None
    ) -> bool:
        """Wait until ``when`` (wall time); return False when ``stop`` was set first."""
        wait_s = (when - self.now()).total_seconds()
        if wait_s <= 0:
            return not (stop is not None and stop.is_set())
        if stop is None:
            time.sleep(wait_s)
            return True
        return not stop.wait(wait_s)


class AcceleratedClock:
    """Simulated time that runs ``speed`` times faster than the wall clock.

    Parameters
    ----------
    start
        Simulated time at creation (aware), or at ``wall_anchor_s`` when given.
    speed
        Simulated seconds per wall second (> 0).
    wall_anchor_s
        Wall time (Unix seconds) at which the simulated time is ``start``: processes
        given the same start, speed and anchor share one simulated clock.
    """

    def __init__(
        self, start: dt.datetime, speed: float, *, wall_anchor_s: float | None = None
    ) -> None:
        if start.tzinfo is None:
            msg = "clock start must be timezone-aware"
            raise FleetInputError(msg)
        if not speed > 0:
            msg = f"speed={speed} must be > 0"
            raise FleetInputError(msg)
        self.start = start.astimezone(dt.UTC)
        self.speed = speed
        self.wall_anchor_s = wall_anchor_s
        self._wall0 = time.monotonic()

    def now(self) -> dt.datetime:
        """Return the simulated time."""
        if self.wall_anchor_s is not None:
            elapsed = (time.time() - self.wall_anchor_s) * self.speed
        else:
            elapsed = (time.monotonic() - self._wall0) * self.speed
        return self.start + dt.timedelta(seconds=elapsed)

    def now_ms(self) -> int:
        """Return the simulated time in ms since the epoch."""
        return int(self.now().timestamp() * 1000)

    def sleep_until(
        self, when: dt.datetime, stop: threading.Event | None = None
    ) -> bool:
        """Wait until simulated ``when``; return False when ``stop`` was set first."""
        wait_s = (when - self.now()).total_seconds() / self.speed
        if wait_s <= 0:
            return not (stop is not None and stop.is_set())
        if stop is None:
            time.sleep(wait_s)
            return True
        return not stop.wait(wait_s)


def next_dayahead_run(
    rules: MarketRules,
    now: dt.datetime,
    *,
    lead_minutes: float = 30.0,
) -> tuple[dt.datetime, dt.date]:
    """Return when the next day-ahead cycle runs and the operating day it is for.

    The cycle runs ``lead_minutes`` before the market's day-ahead close (ERCOT 10:00
    Central, CAISO 10:00 Pacific, from the market file) on D-1, for operating day D.

    Parameters
    ----------
    rules
        The market (time zone, day-ahead close).
    now
        Current time (aware).
    lead_minutes
        How long before the close the cycle runs [minutes] (>= 0).

    Returns
    -------
    tuple
        (run time as aware UTC, operating day).
    """
    if lead_minutes < 0:
        msg = f"lead_minutes={lead_minutes} must be >= 0"
        raise FleetInputError(msg)
    tz = ZoneInfo(rules.timezone)
    local_now = now.astimezone(tz)
    day = local_now.date()
    while True:
        close = dt.datetime.combine(day, rules.day_ahead_close_local, tzinfo=tz)
        run = close - dt.timedelta(minutes=lead_minutes)
        if run > local_now:
            return run.astimezone(dt.UTC), day + dt.timedelta(days=1)
        day += dt.timedelta(days=1)


ClockSpec = tuple[str, float, float] | None
"""A clock another process can rebuild: None (system) or (sim time, speed, wall time)."""


def clock_spec(clock: Clock) -> ClockSpec:
    """Return what :func:`clock_from_spec` needs to rebuild ``clock`` elsewhere."""
    if isinstance(clock, AcceleratedClock):
        return (clock.now().isoformat(), clock.speed, time.time())
    return None


def clock_from_spec(spec: ClockSpec) -> Clock:
    """Rebuild a clock from :func:`clock_spec` (an accelerated one stays in step)."""
    if spec is None:
        return SystemClock()
    when, speed, wall = spec
    return AcceleratedClock(dt.datetime.fromisoformat(when), speed, wall_anchor_s=wall)
