"""Drive the simulated site gateways on the demo's accelerated clock."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from telemetry.registry import SiteSpec
from telemetry.simulator import SimOptions, SiteGateway

logger = logging.getLogger(__name__)


def wall_ms() -> int:
    """Return the wall-clock time [ms since the epoch, UTC]."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DemoClock:
    """Map the operating day's simulated time onto the wall clock.

    Telemetry and setpoints carry wall-clock times (the ingest refuses samples from
    the past or the future); the plant's physics and the schedule run on simulated
    time, ``speed`` times faster.
    """

    t0_ms: int
    """Wall time at which interval 0 starts [ms]."""
    speed: float
    """Simulated seconds per wall second."""
    interval_s: float
    """Length of one dispatch interval, simulated [s]."""

    def wall_ms_of(self, interval: float) -> int:
        """Return the wall time at which (fractional) interval ``interval`` starts [ms]."""
        return self.t0_ms + round(interval * self.interval_s / self.speed * 1000)

    def interval_at(self, when_ms: int) -> float:
        """Return the fractional interval index at wall time ``when_ms``."""
        return (when_ms - self.t0_ms) / 1000 * self.speed / self.interval_s

    def sim_days(self, when_ms: int) -> float:
        """Return the simulated days since interval 0 at wall time ``when_ms``."""
        return max(0.0, (when_ms - self.t0_ms) / 1000 * self.speed / 86_400)


class FleetPlant:
    """The fleet's simulated gateways, stepped by one thread on a :class:`DemoClock`.

    Each tick advances every plant by the simulated time elapsed, publishes one
    sample per device over MQTT and serves backfill requests. The plant also meters
    each interval's discharged and charged energy (what the site meter would settle).
    """

    def __init__(
        self,
        specs: list[SiteSpec],
        mqtt_url: str,
        *,
        protocol: str,
        rate_hz: float,
        intervals: int,
        soc_initial: dict[str, float],
        aging: dict[str, Callable[[float, float, float], float]] | None = None,
        seed: int = 0,
    ) -> None:
        self.options = SimOptions(
            rate_hz=rate_hz,
            seed=seed,
            protocol=protocol,
            comm_loss_per_h=0.02,
            cell_alarm_per_h=0.02,
        )
        self.intervals = intervals
        master = random.Random(seed)
        self.gateways: dict[str, SiteGateway] = {}
        for spec in specs:
            self.gateways[spec.site_id] = SiteGateway(
                spec,
                mqtt_url,
                self.options,
                random.Random(master.random()),
                aging=(aging or {}).get(spec.site_id),
                soc_initial=soc_initial.get(spec.site_id, 0.5),
            )
        self.export_mwh = {sid: np.zeros(intervals) for sid in self.gateways}
        """Energy discharged per interval [MWh] (AC, metered)."""
        self.import_mwh = {sid: np.zeros(intervals) for sid in self.gateways}
        """Energy charged per interval [MWh] (AC, metered)."""
        self.soc_path = {sid: np.full(intervals + 1, np.nan) for sid in self.gateways}
        """SoC at each interval boundary (fraction 0-1)."""
        for sid, gw in self.gateways.items():
            self.soc_path[sid][0] = gw.state.soc
        self.clock: DemoClock | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.error: BaseException | None = None

    def connect(self, timeout_s: float = 15.0) -> bool:
        """Connect every gateway; return whether all connected within ``timeout_s``."""
        for gw in self.gateways.values():
            gw.connect()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(gw.client.is_connected() for gw in self.gateways.values()):
                return True
            time.sleep(0.05)
        return False

    def start(self, clock: DemoClock) -> None:
        """Start stepping on ``clock`` in a thread."""
        self.clock = clock
        self._thread = threading.Thread(
            target=self._run, name="demo-plant", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced to the orchestrator
            self.error = exc
            logger.exception("plant thread failed")

    def _loop(self) -> None:
        clock = self.clock
        assert clock is not None
        period_s = 1.0 / self.options.rate_hz
        last_ms = wall_ms()
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_tick:
                time.sleep(min(next_tick - now, 0.05))
                continue
            next_tick = max(next_tick + period_s, now - 1.0)
            now_ms = wall_ms()
            # the plant holds still until the day starts (interval 0)
            dt_s = max(0.0, (now_ms - max(last_ms, clock.t0_ms)) / 1000 * clock.speed)
            i_before = clock.interval_at(last_ms)
            last_ms = now_ms
            i_now = clock.interval_at(now_ms)
            idx = int(min(max(i_before, 0.0), self.intervals - 1))
            for sid, gw in self.gateways.items():
                st = gw.state
                exp0, imp0 = st.e_exp_wh, st.e_imp_wh
                if dt_s > 0:
                    gw.step(dt_s, now_ms)
                if i_now > 0 and i_before < self.intervals:
                    exp = (st.e_exp_wh - exp0) / 1e6
                    imp = (st.e_imp_wh - imp0) / 1e6
                    nxt = idx + 1
                    # a step across a boundary meters each side its share of time
                    if int(i_now) >= nxt and nxt < self.intervals and i_now > i_before:
                        share = (nxt - max(i_before, 0.0)) / (
                            i_now - max(i_before, 0.0)
                        )
                        share = min(1.0, max(0.0, share))
                        self.export_mwh[sid][nxt] += exp * (1 - share)
                        self.import_mwh[sid][nxt] += imp * (1 - share)
                        exp, imp = exp * share, imp * share
                    self.export_mwh[sid][idx] += exp
                    self.import_mwh[sid][idx] += imp
                boundary = int(i_now)
                if 0 < boundary <= self.intervals and int(i_before) < boundary:
                    self.soc_path[sid][boundary] = st.soc
                gw.publish_samples(now_ms)
                gw.serve_backfill(50)

    def stop(self, drain_timeout_s: float = 20.0) -> None:
        """Stop stepping, wait for the broker to acknowledge the outboxes, disconnect."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and any(
            gw.outbox for gw in self.gateways.values()
        ):
            time.sleep(0.05)
        for gw in self.gateways.values():
            try:
                gw.disconnect()
            except (OSError, RuntimeError, ValueError) as exc:
                logger.warning(
                    "gateway %s: disconnect failed: %s", gw.spec.site_id, exc
                )
                gw.client.loop_stop()

    @property
    def published(self) -> dict[str, int]:
        """Samples published per site (tlm messages)."""
        return {sid: gw.published for sid, gw in self.gateways.items()}

    def setpoints_received(self) -> dict[str, int]:
        """Setpoint commands each gateway received (distinct ``cmd_id``)."""
        return {sid: len(gw.seen_cmds) for sid, gw in self.gateways.items()}

    def setpoints_accepted(self) -> dict[str, int]:
        """Setpoint commands each gateway accepted."""
        return {
            sid: sum(1 for s in gw.seen_cmds.values() if s == "accepted")
            for sid, gw in self.gateways.items()
        }
