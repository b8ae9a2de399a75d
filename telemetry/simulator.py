"""Simulate LFP site gateways: physics, birth/state/tlm, outbox, backfill, setpoints."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from telemetry import topics
from telemetry.errors import TelemetryInputError
from telemetry.ingest import make_client, parse_mqtt_url
from telemetry.lfp import bms_current_limits_a, lfp_ocv_v, soc_step, temperature_step
from telemetry.payloads import (
    LIVE_BATCH_MAX_AGE_MS,
    MAX_HIST_BYTES,
    MAX_HIST_SAMPLES,
    MAX_LIVE_BATCH_BYTES,
    MAX_LIVE_BATCH_SAMPLES,
    MAX_TLM_BYTES,
    CtlPayload,
    SetpointPayload,
    loads_strict,
    pack_samples,
)
from telemetry.registry import SiteSpec

logger = logging.getLogger(__name__)

AgingHook = Callable[[float, float, float], float]
"""``(t_days, throughput_mwh, mean_soc) -> capacity fraction 0-1`` (degradation model)."""

HIST_BATCH = MAX_HIST_SAMPLES
HIST_RATE_PER_S = 200.0
CELL_ALARM_BIT = 1 << 2
COMM_LOSS_BIT = 1 << 0
CELL_R_OHM = 0.00025
"""Internal resistance of one 314 Ah LFP cell [ohm]."""


LOCAL_SOC_GAIN = 1.0
"""Local-cycle SoC feedback [fraction of rated power per unit of SoC error]."""
MAX_BANKS = 64

FaultKind = Literal["cell_drift", "fan_failure", "fast_fade", "comm_dropout"]
FAULT_KINDS: tuple[str, ...] = (
    "cell_drift",
    "fan_failure",
    "fast_fade",
    "comm_dropout",
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault injected into one battery device (string) of one site.

    ``rate`` means, by ``kind``: ``cell_drift`` — state of charge (fraction 0-1) the
    weakest cell loses per simulated day (its voltage falls below the others, most
    visibly at mid SoC); ``fan_failure`` — multiplier (>= 1) of the string's thermal
    resistance (steady-state rise and time constant); ``fast_fade`` — multiplier
    (>= 1) of the capacity the aging hook says is lost after the onset;
    ``comm_dropout`` — probability (0-1) that a sample of the device is ``bad``.
    """

    site_id: str
    """Site of the faulty device."""
    kind: FaultKind
    """What fails."""
    dev: str
    """Battery device id (``bank1`` … ``bankN``)."""
    onset_s: float
    """Simulated seconds after the gateway's start at which the fault begins [s]."""
    rate: float
    """Severity, in the unit of ``kind`` (see the class docstring)."""

    def __post_init__(self) -> None:
        where = f"fault {self.site_id}:{self.dev}:{self.kind}"
        if self.kind not in FAULT_KINDS:
            msg = f"{where}: kind={self.kind!r} must be one of {', '.join(FAULT_KINDS)}"
            raise TelemetryInputError(msg)
        if not (math.isfinite(self.onset_s) and self.onset_s >= 0):
            msg = f"{where}: onset_s={self.onset_s} must be >= 0"
            raise TelemetryInputError(msg)
        low, high = {
            "cell_drift": (0.0, 1.0),
            "fan_failure": (1.0, 20.0),
            "fast_fade": (1.0, 100.0),
            "comm_dropout": (0.0, 1.0),
        }[self.kind]
        if not (math.isfinite(self.rate) and low <= self.rate <= high):
            msg = f"{where}: rate={self.rate} must be in [{low}, {high}]"
            raise TelemetryInputError(msg)


def parse_fault(text: str) -> Fault:
    """Parse ``SITE:KIND:ONSET_H:RATE`` or ``SITE:DEV:KIND:ONSET_H:RATE`` into a fault.

    The device defaults to ``bank1``; the onset is in hours after the start.

    Raises
    ------
    TelemetryInputError
        When the text does not have that shape or a field is out of range.
    """
    parts = text.split(":")
    if len(parts) == 4:
        site, kind, onset_h, rate = parts
        dev = "bank1"
    elif len(parts) == 5:
        site, dev, kind, onset_h, rate = parts
    else:
        msg = f"fault={text!r} must be SITE:KIND:ONSET_H:RATE or SITE:DEV:KIND:ONSET_H:RATE"
        raise TelemetryInputError(msg)
    try:
        onset_s, severity = float(onset_h) * 3600.0, float(rate)
    except ValueError:
        msg = f"fault={text!r}: ONSET_H={onset_h!r} and RATE={rate!r} must be numbers"
        raise TelemetryInputError(msg) from None
    if kind not in FAULT_KINDS:
        msg = f"fault={text!r}: kind={kind!r} must be one of {', '.join(FAULT_KINDS)}"
        raise TelemetryInputError(msg)
    return Fault(site, kind, dev, onset_s, severity)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SimOptions:
    """How the simulator behaves."""

    rate_hz: float = 1.0
    """Samples per second per device."""
    seed: int = 0
    comm_loss_per_h: float = 0.5
    """Expected BMS comm-loss episodes per site-hour (``q: bad``)."""
    cell_alarm_per_h: float = 0.2
    """Expected cell-voltage alarm episodes per site-hour."""
    history_samples: int = 100_000
    """History ring buffer per device (7 days at 1 Hz would be 604,800)."""
    ambient_c: float = 25.0
    local_period_s: float = 3600.0
    """Period of the local (no-setpoint) charge/discharge cycle [s]."""
    local_amplitude: float = 0.3
    """Amplitude of the local cycle, fraction of rated power."""
    uplink_loss: float = 0.0
    """Probability that a live sample is buffered but never published (lost uplink);
    the ingest's gap detector then asks for it with a backfill."""
    firmware: str = "bessfleet-sim 0.1"
    protocol: str = "5"
    banks: int = 1
    """Battery devices per site (``bank1`` … ``bankN``): parallel strings sharing the
    site's power equally, so that a faulty one can be compared with its peers."""
    faults: tuple[Fault, ...] = ()
    """Faults to inject (each names its site and device)."""
    local_soc_target: float | None = None
    """When set (fraction 0-1), the local cycle adds a proportional term steering the
    SoC back to it, so long unattended runs stay inside the SoC window."""
    live_batch: int = 1
    """Live samples per ``up/tlm`` message: 1 = one sample per message; 2-60 = the
    batched live form of spec version 1.1 (flushed at least every 5 s)."""

    def __post_init__(self) -> None:
        if not 1 <= self.live_batch <= MAX_LIVE_BATCH_SAMPLES:
            msg = (
                f"live_batch={self.live_batch} must be in [1, {MAX_LIVE_BATCH_SAMPLES}]"
            )
            raise TelemetryInputError(msg)
        if not 1 <= self.banks <= MAX_BANKS:
            msg = f"banks={self.banks} must be in [1, {MAX_BANKS}]"
            raise TelemetryInputError(msg)
        target = self.local_soc_target
        if target is not None and not 0.0 < target < 1.0:
            msg = f"local_soc_target={target} must be in (0, 1)"
            raise TelemetryInputError(msg)
        devices = {f"bank{i + 1}" for i in range(self.banks)}
        for fault in self.faults:
            if fault.dev not in devices:
                msg = (
                    f"fault {fault.site_id}:{fault.dev}:{fault.kind}: dev={fault.dev!r} "
                    f"must be one of bank1…bank{self.banks} (banks={self.banks})"
                )
                raise TelemetryInputError(msg)


@dataclass(slots=True)
class _Active:
    setpoint: SetpointPayload
    applied: bool = False


@dataclass(slots=True)
class BankState:
    """One battery device (string) of a simulated site."""

    soc: float
    """Fraction 0-1."""
    temp_c: float
    """Mean cell temperature [C]."""
    capacity_fraction: float = 1.0
    """Capacity now over nameplate, fraction 0-1."""
    thermal_factor: float = 1.0
    """Multiplier of the thermal resistance of a healthy bank (peers differ a bit)."""
    drift_soc: float = 0.0
    """SoC (fraction) the weakest cell lags the others by (``cell_drift``)."""
    loss_at_fade_onset: float | None = None
    """Capacity loss (fraction) when a ``fast_fade`` fault began."""


@dataclass(slots=True)
class SiteState:
    """The simulated plant of one site."""

    soc: float
    """Fraction 0-1."""
    temp_c: float
    p_mw: float = 0.0
    """AC power now [MW], + = discharge."""
    throughput_mwh: float = 0.0
    e_exp_wh: float = 0.0
    e_imp_wh: float = 0.0
    n_cyc: int = 0
    capacity_fraction: float = 1.0
    comm_loss_until_ms: int = 0
    alarm_until_ms: int = 0
    mode: str = "local"
    """``local`` (built-in cycle), ``setpoint`` or ``hold`` (after an expiry)."""


class SiteGateway:
    """One simulated gateway: its MQTT client, plant, outbox and history buffer."""

    def __init__(
        self,
        spec: SiteSpec,
        mqtt_url: str,
        options: SimOptions,
        rng: random.Random,
        aging: AgingHook | None = None,
        soc_initial: float = 0.5,
        seq_start: int = 1,
        started_ms: int | None = None,
        load_mw: Callable[[int], float] | None = None,
    ) -> None:
        self.spec = spec
        self.load_mw = load_mw
        """Facility load [MW] at a time [ms] of a behind-the-meter site (``meter1``,
        + = consumption); None: no meter device."""
        self.paused = False
        """True while the gateway is stopped: it neither steps nor publishes."""
        self.clock_ms: Callable[[], int] = _now_ms
        """The gateway's clock [ms]: the wall clock, or a simulated one (set by
        :meth:`Simulator.run` with ``clock_ms``) for expiry checks and timestamps."""
        self.options = options
        self.rng = rng
        self.aging = aging
        self.state = SiteState(soc=soc_initial, temp_c=options.ambient_c)
        self.bank_devices = tuple(f"bank{i + 1}" for i in range(options.banks))
        self.devices: tuple[str, ...] = (*self.bank_devices, "pcs1")
        if load_mw is not None:
            self.devices = (*self.devices, "meter1")
        self.faults = tuple(f for f in options.faults if f.site_id == spec.site_id)
        # A separate generator keeps the gateway's own random stream (noise,
        # comm loss) unchanged by adding banks or faults.
        self._fault_rng = random.Random(f"{spec.site_id}:{options.seed}:banks")
        self.banks = [
            BankState(
                soc=soc_initial,
                temp_c=options.ambient_c,
                thermal_factor=1.0
                if options.banks == 1
                else self._fault_rng.gauss(1.0, 0.03),
            )
            for _ in self.bank_devices
        ]
        self.seq = dict.fromkeys(self.devices, seq_start)
        self.last_ts = dict.fromkeys(self.devices, 0)
        self.history: dict[str, deque[tuple[int, int, str, dict[str, Any]]]] = {
            d: deque(maxlen=options.history_samples) for d in self.devices
        }
        self.outbox: dict[int, tuple[str, int, int]] = {}
        """mid -> (dev, first seq, samples) of published messages awaiting PUBACK."""
        self.dropped_oversize = 0
        """Samples not published live because alone they exceed the topic's limit
        (spec 2 "Size"); they stay in the history buffer for a backfill."""
        self._live: dict[str, list[dict[str, Any]]] = {d: [] for d in self.devices}
        self.seen_cmds: dict[str, str] = {}
        self.active: _Active | None = None
        self.pending: _Active | None = None
        """A setpoint received ahead of its ``valid_from``: it replaces the active
        one when it becomes valid (the active one is followed until then)."""
        self.sid = 0
        self.started_ms = self.clock_ms() if started_ms is None else started_ms
        """Start of the simulated clock [ms]: local-cycle phase, aging and fault
        onsets count from it (pass a simulated time to drive an accelerated clock)."""
        self.published = 0
        self.acked = 0
        self._lock = threading.Lock()
        self._early_acks: set[int] = set()
        self._hist_jobs: deque[CtlPayload] = deque()
        self._i_rated_a = self._rated_current_a()
        address = parse_mqtt_url(mqtt_url)
        self.address = address
        self.client = self._make_client()

    # -- MQTT ---------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = make_client(
            self.address,
            client_id=self.spec.site_id,
            protocol=self.options.protocol,
            username=self.spec.site_id,
        )
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(1, 10)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _state_topic(self) -> str:
        return topics.up(self.spec.group, self.spec.site_id, "state")

    def connect(self) -> None:
        """Connect asynchronously with a fresh session id and the Will set."""
        self.sid = max(self.clock_ms(), self.sid + 1)
        will = json.dumps(
            {"v": 1, "online": False, "sid": self.sid, "ts": self.clock_ms()}
        )
        self.client.will_set(self._state_topic(), will, qos=1, retain=True)
        props = None
        if self.options.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 7 * 86_400
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=30,
            clean_start=False
            if self.options.protocol == "5"
            else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        self.client.loop_start()

    def disconnect(self) -> None:
        """Publish offline state, then disconnect cleanly."""
        payload = json.dumps(
            {"v": 1, "online": False, "sid": self.sid, "ts": self.clock_ms()}
        )
        info = self.client.publish(self._state_topic(), payload, qos=1, retain=True)
        if self.client.is_connected():
            info.wait_for_publish(timeout=5)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: Any,
        reason_code: Any,
        _properties: Any,
    ) -> None:
        if getattr(reason_code, "is_failure", False):
            logger.error("site %s: connect refused: %s", self.spec.site_id, reason_code)
            return
        for topic in topics.gateway_subscriptions(self.spec.group, self.spec.site_id):
            client.subscribe(topic, qos=1)
        self.publish_birth()
        if not getattr(flags, "session_present", True):
            logger.info("site %s: new broker session", self.spec.site_id)

    def birth_payload(self) -> dict[str, Any]:
        """Return the birth message (nameplate from the site spec)."""
        spec = self.spec
        return {
            "v": 1,
            "site": spec.site_id,
            "sid": self.sid,
            "ts": self.clock_ms(),
            "firmware": self.options.firmware,
            "devices": list(self.devices),
            "nameplate": {
                "wh_rtg_wh": spec.energy_mwh * 1e6,
                "w_cha_rte_max_w": spec.charge_mw * 1e6,
                "w_dis_cha_rte_max_w": spec.discharge_mw * 1e6,
                "soc_max_pct": 100 * spec.soc_max,
                "soc_min_pct": 100 * spec.soc_min,
                "w_max_rtg_w": max(spec.charge_mw, spec.discharge_mw) * 1e6,
                "chemistry": "LFP",
                "cells_in_series": self._n_series(),
                "strings": spec.strings,
            },
            "seq_next": dict(self.seq),
            "temp_source": "cell",
        }

    def publish_birth(self) -> None:
        """Publish birth (retained) and the online state (retained)."""
        base = topics.up(self.spec.group, self.spec.site_id, "birth")
        self.client.publish(base, json.dumps(self.birth_payload()), qos=1, retain=True)
        state = {"v": 1, "online": True, "sid": self.sid, "ts": self.clock_ms()}
        self.client.publish(self._state_topic(), json.dumps(state), qos=1, retain=True)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, _rc: Any, _props: Any
    ) -> None:
        with self._lock:
            entry = self.outbox.pop(mid, None)
            if entry is not None:
                self.acked += entry[2]
            else:
                self._early_acks.add(mid)

    def _on_message(
        self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        kind = message.topic.rsplit("/", 1)[-1]
        try:
            if message.topic.startswith(topics.HOST_STATE_PREFIX):
                return
            body = loads_strict(bytes(message.payload))
            if kind == "cmd":
                self._on_setpoint(body)
            elif kind == "ctl":
                ctl = CtlPayload.model_validate(body)
                if ctl.op == "rebirth":
                    self.publish_birth()
                else:
                    with self._lock:
                        self._hist_jobs.append(ctl)
        except (ValueError, ValidationError) as exc:
            logger.warning("site %s: bad %s message: %s", self.spec.site_id, kind, exc)

    # -- setpoints ----------------------------------------------------------------
    def _ack(self, cmd_id: str, status: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {
            "v": 1,
            "cmd_id": cmd_id,
            "status": status,
            "ts": self.clock_ms(),
        }
        if reason:
            body["reason"] = reason
        topic = topics.up(self.spec.group, self.spec.site_id, "ack")
        self.client.publish(topic, json.dumps(body), qos=1)

    def _on_setpoint(self, body: Any) -> None:
        try:
            sp = SetpointPayload.model_validate(body)
        except ValidationError as exc:
            cmd_id = body.get("cmd_id") if isinstance(body, dict) else None
            if isinstance(cmd_id, str) and cmd_id:
                self._ack(cmd_id[:64], "rejected", f"invalid: {exc.errors()[0]['msg']}")
            return
        if sp.cmd_id in self.seen_cmds:
            self._ack(sp.cmd_id, self.seen_cmds[sp.cmd_id])  # idempotent replay
            return
        now = self.clock_ms()
        status, reason = "accepted", None
        if sp.site != self.spec.site_id:
            status, reason = "rejected", f"site {sp.site} is not {self.spec.site_id}"
        elif sp.expires_at <= now:
            status, reason = "expired", "arrived after expires_at"
        elif (
            not -self.spec.charge_mw * 1e6
            <= sp.p_ac_w_setpoint
            <= self.spec.discharge_mw * 1e6
        ):
            status, reason = "rejected", "p_ac_w_setpoint outside the rating"
        self.seen_cmds[sp.cmd_id] = status
        self._ack(sp.cmd_id, status, reason)
        if status == "accepted":
            with self._lock:
                if sp.valid_from > now and self.active is not None:
                    self.pending = _Active(sp)
                else:
                    self.active = _Active(sp)
                    self.pending = None

    def _target_mw(self, now_ms: int) -> float:
        spec, st = self.spec, self.state
        pending = self.pending
        if pending is not None and now_ms >= pending.setpoint.valid_from:
            self.active, self.pending = pending, None
        active = self.active
        if active is not None:
            sp = active.setpoint
            if now_ms >= sp.expires_at:
                self.active = None
                st.mode = "hold"
                logger.info(
                    "site %s: setpoint %s expired; holding SoC", spec.site_id, sp.cmd_id
                )
            elif now_ms >= sp.valid_from:
                st.mode = "setpoint"
                if not active.applied:
                    active.applied = True
                    self._ack(sp.cmd_id, "applied")
                target = sp.p_ac_w_setpoint / 1e6
                soc_pct = 100 * st.soc
                if target > 0 and soc_pct <= sp.soc_min_pct:
                    target = 0.0
                if target < 0 and soc_pct >= sp.soc_max_pct:
                    target = 0.0
                return target
        if st.mode == "hold":
            return 0.0
        t = (now_ms - self.started_ms) / 1000
        phase = 2 * math.pi * t / self.options.local_period_s
        target = self.options.local_amplitude * spec.discharge_mw * math.sin(phase)
        if self.options.local_soc_target is not None:
            error = st.soc - self.options.local_soc_target
            target += LOCAL_SOC_GAIN * error * spec.discharge_mw
        return target

    # -- physics ------------------------------------------------------------------
    def _n_series(self) -> int:
        return self.spec.cells_in_series or 416

    def _rated_current_a(self) -> float:
        v_nom = self._n_series() * 3.2
        return max(self.spec.charge_mw, self.spec.discharge_mw) * 1e6 / v_nom

    def _fault(self, dev: str, kind: str, now_ms: int) -> Fault | None:
        """Return the fault of ``kind`` active on ``dev`` at ``now_ms``, if any."""
        for fault in self.faults:
            if (
                fault.dev == dev
                and fault.kind == kind
                and now_ms >= self.started_ms + fault.onset_s * 1000
            ):
                return fault
        return None

    def step(self, dt_s: float, now_ms: int) -> None:
        """Advance the plant by ``dt_s`` seconds toward the current target power.

        The banks share the site's power equally; each has its own SoC (its own
        capacity), temperature (its own thermal resistance) and faults.
        """
        spec, st = self.spec, self.state
        banks = self.banks
        n_banks = len(banks)
        target = self._target_mw(now_ms)
        ramp = spec.discharge_mw / 10.0  # full power in 10 s
        if self.active is not None and self.state.mode == "setpoint":
            ramp = self.active.setpoint.ramp_w_per_s / 1e6
        step = max(-ramp * dt_s, min(ramp * dt_s, target - st.p_mw))
        p = st.p_mw + step
        p = max(-spec.charge_mw, min(spec.discharge_mw, p))
        t_min = min(b.temp_c for b in banks) - 2.0
        t_max = max(b.temp_c for b in banks) + 3.0
        i_cha, i_dis = bms_current_limits_a(st.soc, t_min, t_max, self._i_rated_a)
        v_dc = self._n_series() * lfp_ocv_v(st.soc)
        p = max(-i_cha * v_dc / 1e6, min(i_dis * v_dc / 1e6, p))
        if p > 0 and min(b.soc for b in banks) <= spec.soc_min:
            p = 0.0
        if p < 0 and max(b.soc for b in banks) >= spec.soc_max:
            p = 0.0
        rated_mw = max(spec.charge_mw, spec.discharge_mw)
        for dev, bank in zip(self.bank_devices, banks, strict=True):
            energy = spec.energy_mwh / n_banks * bank.capacity_fraction
            bank.soc = soc_step(
                bank.soc, p / n_banks, dt_s, energy, spec.eta_charge, spec.eta_discharge
            )
            r_th = bank.thermal_factor
            fan = self._fault(dev, "fan_failure", now_ms)
            if fan is not None:
                r_th *= fan.rate
            bank.temp_c = temperature_step(
                bank.temp_c,
                self.options.ambient_c,
                p / n_banks,
                rated_mw / n_banks,
                dt_s,
                tau_s=3600.0 * r_th,
                rise_at_rated_c=12.0 * r_th,
            )
            drift = self._fault(dev, "cell_drift", now_ms)
            if drift is not None:
                bank.drift_soc = min(1.0, bank.drift_soc + drift.rate * dt_s / 86_400)
        st.soc = sum(b.soc for b in banks) / n_banks
        st.temp_c = sum(b.temp_c for b in banks) / n_banks
        st.p_mw = p
        st.throughput_mwh += abs(p) * dt_s / 3600
        if p > 0:
            st.e_exp_wh += p * 1e6 * dt_s / 3600
        else:
            st.e_imp_wh += -p * 1e6 * dt_s / 3600
        st.n_cyc = int(st.throughput_mwh / (2 * spec.energy_mwh))
        if self.aging is not None and int(now_ms / 60_000) != int(
            (now_ms - dt_s * 1000) / 60_000
        ):
            t_days = (now_ms - self.started_ms) / 86_400_000
            healthy = min(1.0, max(0.5, self.aging(t_days, st.throughput_mwh, st.soc)))
            for dev, bank in zip(self.bank_devices, banks, strict=True):
                bank.capacity_fraction = healthy
                fade = self._fault(dev, "fast_fade", now_ms)
                if fade is not None:
                    if bank.loss_at_fade_onset is None:
                        bank.loss_at_fade_onset = 1.0 - healthy
                    onset = bank.loss_at_fade_onset
                    loss = onset + fade.rate * (1.0 - healthy - onset)
                    bank.capacity_fraction = min(1.0, max(0.5, 1.0 - loss))
            st.capacity_fraction = sum(b.capacity_fraction for b in banks) / n_banks
        per_step = dt_s / 3600
        if self.rng.random() < self.options.comm_loss_per_h * per_step:
            st.comm_loss_until_ms = now_ms + self.rng.randint(5_000, 30_000)
        if self.rng.random() < self.options.cell_alarm_per_h * per_step:
            st.alarm_until_ms = now_ms + self.rng.randint(5_000, 20_000)
            self._event("alarm_set", "cell_v_high", "cell voltage above 3.65 V")

    def _event(self, kind: str, code: str, detail: str) -> None:
        body = {
            "v": 1,
            "site": self.spec.site_id,
            "sid": self.sid,
            "ts": self.clock_ms(),
            "kind": kind,
            "dev": "bank1",
            "code": code,
            "detail": detail,
        }
        self.client.publish(
            topics.up(self.spec.group, self.spec.site_id, "evt"),
            json.dumps(body),
            qos=1,
        )

    def measurements(self, now_ms: int) -> dict[str, dict[str, Any]]:
        """Return this instant's measurements per device (units in the keys)."""
        st = self.state
        alarm = st.alarm_until_ms > now_ms
        if not alarm and st.alarm_until_ms and st.alarm_until_ms <= now_ms:
            st.alarm_until_ms = 0
            self._event("alarm_clear", "cell_v_high", "cell voltage back below 3.65 V")
        out: dict[str, dict[str, Any]] = {}
        n_banks = len(self.banks)
        for dev, bank in zip(self.bank_devices, self.banks, strict=True):
            out[dev] = self._bank_measurements(
                bank, st.p_mw * 1e6 / n_banks, alarm=alarm and dev == "bank1"
            )
        if st.comm_loss_until_ms > now_ms:
            for dev in self.bank_devices:
                out[dev] = dict.fromkeys(out[dev], None) | {"evt1": COMM_LOSS_BIT}
        for fault in self.faults:
            if (
                fault.kind == "comm_dropout"
                and self._fault(fault.dev, "comm_dropout", now_ms) is not None
                and self._fault_rng.random() < fault.rate
            ):
                out[fault.dev] = dict.fromkeys(out[fault.dev], None) | {
                    "evt1": COMM_LOSS_BIT
                }
        p_w = st.p_mw * 1e6
        out["pcs1"] = {
            "p_ac_w": round(p_w, 1),
            "q_ac_var": 0.0,
            "f_hz": round(60.0 + self.rng.gauss(0, 0.01), 3),
            "e_exp_wh": round(st.e_exp_wh, 1),
            "e_imp_wh": round(st.e_imp_wh, 1),
        }
        if self.load_mw is not None:
            out["meter1"] = {"p_ac_w": round(self.load_mw(now_ms) * 1e6, 1)}
        return out

    def _bank_measurements(
        self, bank: BankState, p_w: float, *, alarm: bool
    ) -> dict[str, Any]:
        """Return one bank's measurements at AC power ``p_w`` [W] (its share)."""
        spec, st = self.spec, self.state
        n_banks = len(self.banks)
        n = self._n_series()
        ocv = lfp_ocv_v(bank.soc)
        v_dc = n * ocv
        i_dc = p_w * n_banks / v_dc if v_dc > 0 else 0.0
        i_cell = i_dc / max(1, spec.strings) * 1.0
        v_cell = ocv - i_cell * CELL_R_OHM
        spread = 0.012 + 0.02 * abs(bank.soc - 0.5)
        v_max = v_cell + spread / 2
        if alarm:
            v_max = max(v_max, 3.66)
        v_min = v_cell - spread / 2
        if bank.drift_soc > 0.0:
            # the weakest cell (already the lowest) lags the others by drift_soc
            v_min -= ocv - lfp_ocv_v(bank.soc - bank.drift_soc)
        v_dc = n * v_cell
        i_cha, i_dis = bms_current_limits_a(
            bank.soc, bank.temp_c - 2.0, bank.temp_c + 3.0, self._i_rated_a / n_banks
        )
        evt1 = CELL_ALARM_BIT if v_max > 3.65 else 0
        p_dc_w = p_w / 0.985 if p_w > 0 else p_w * 0.985
        bank_m: dict[str, Any] = {
            "soc_pct": round(100 * bank.soc, 3),
            "soh_pct": round(100 * bank.capacity_fraction, 2),
            "p_dc_w": round(p_dc_w, 1),
            "v_dc_v": round(v_dc, 2),
            "i_dc_a": round(p_dc_w / v_dc, 2),
            "cell_v_max_v": round(v_max, 4),
            "cell_v_min_v": round(v_min, 4),
            "cell_v_avg_v": round((v_max + v_min) / 2, 4),
            "cell_t_max_c": round(bank.temp_c + 3.0, 2),
            "cell_t_min_c": round(bank.temp_c - 2.0, 2),
            "cell_t_avg_c": round(bank.temp_c, 2),
            "wh_avail_wh": round(
                bank.soc * spec.energy_mwh / n_banks * bank.capacity_fraction * 1e6, 0
            ),
            "i_cha_max_a": round(i_cha, 1),
            "i_dis_max_a": round(i_dis, 1),
            "cha_st": "CHARGING"
            if p_w < 0
            else ("DISCHARGING" if p_w > 0 else "HOLDING"),
            "state": "CONNECTED",
            "loc_rem": "REMOTE",
            "evt1": evt1,
            "n_cyc": st.n_cyc,
        }
        return bank_m

    def publish_samples(self, now_ms: int) -> int:
        """Publish the live sample of every device; return how many were published.

        With ``live_batch`` > 1 samples wait in a per-device batch that is sent when
        full or 5 s old (spec 2, batched live form); the count is then of samples sent.
        """
        meas = self.measurements(now_ms)
        count = 0
        for dev in self.devices:
            ts = max(now_ms, self.last_ts[dev] + 1)
            self.last_ts[dev] = ts
            seq = self.seq[dev]
            self.seq[dev] = seq + 1
            m = meas[dev]
            q = (
                "bad"
                if dev in self.bank_devices and m.get("soc_pct") is None
                else "good"
            )
            self.history[dev].append((seq, ts, q, m))
            if (
                self.options.uplink_loss
                and self.rng.random() < self.options.uplink_loss
            ):
                continue
            topic = topics.up(self.spec.group, self.spec.site_id, "tlm", dev)
            if self.options.live_batch > 1:
                pending = self._live[dev]
                pending.append({"seq": seq, "ts": ts, "q": q, "m": m})
                if (
                    len(pending) >= self.options.live_batch
                    or ts - pending[0]["ts"] >= LIVE_BATCH_MAX_AGE_MS
                ):
                    count += self._flush_live(dev)
                continue
            body = {
                "v": 1,
                "site": self.spec.site_id,
                "dev": dev,
                "sid": self.sid,
                "seq": seq,
                "ts": ts,
                "q": q,
                "m": m,
            }
            payload = json.dumps(body, separators=(",", ":")).encode()
            if len(payload) > MAX_TLM_BYTES:
                self._drop_oversize(dev, [seq], len(payload), MAX_TLM_BYTES)
                continue
            self._publish(topic, payload, dev, seq, 1)
            count += 1
        self.published += count
        return count

    def flush_live(self) -> int:
        """Send every pending live batch now; return the samples sent."""
        count = sum(self._flush_live(dev) for dev in self.devices)
        self.published += count
        return count

    def _flush_live(self, dev: str) -> int:
        pending, self._live[dev] = self._live[dev], []
        if not pending:
            return 0
        head = {"v": 1, "site": self.spec.site_id, "dev": dev, "sid": self.sid}
        payloads, dropped = pack_samples(
            head,
            pending,
            max_bytes=MAX_LIVE_BATCH_BYTES,
            max_samples=MAX_LIVE_BATCH_SAMPLES,
        )
        if dropped:
            self._drop_oversize(
                dev, [d["seq"] for d in dropped], None, MAX_LIVE_BATCH_BYTES
            )
        topic = topics.up(self.spec.group, self.spec.site_id, "tlm", dev)
        sent = 0
        for payload, n in payloads:
            self._publish(topic, payload, dev, pending[0]["seq"], n)
            sent += n
        return sent

    def _drop_oversize(
        self, dev: str, seqs: list[int], size: int | None, limit: int
    ) -> None:
        """Never publish a message over its topic's limit (spec 2 "Size")."""
        self.dropped_oversize += len(seqs)
        logger.warning(
            "site %s/%s: seq %s not sent live: %s bytes > %d (kept for backfill)",
            self.spec.site_id,
            dev,
            seqs[:5],
            size if size is not None else "sample alone",
            limit,
        )

    def _publish(self, topic: str, payload: bytes, dev: str, seq: int, n: int) -> None:
        # never hold our lock across publish: paho calls on_publish holding its own
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self.acked += n
            else:
                self.outbox[info.mid] = (dev, seq, n)

    def serve_backfill(self, budget: int) -> int:
        """Answer queued backfill requests with ``hist`` batches; return messages sent."""
        sent = 0
        while sent < budget:
            with self._lock:
                if not self._hist_jobs:
                    return sent
                job = self._hist_jobs.popleft()
            if (
                job.dev not in self.history
                or job.from_seq is None
                or job.to_seq is None
            ):
                continue
            buf = self.history[job.dev]
            oldest = buf[0][0] if buf else self.seq[job.dev]
            if job.from_seq < oldest:
                self._unavailable(job.dev, job.from_seq, min(job.to_seq, oldest - 1))
            wanted = [
                {"seq": s, "ts": t, "q": q, "m": m}
                for s, t, q, m in buf
                if job.from_seq <= s <= job.to_seq
            ]
            head = {"v": 1, "site": self.spec.site_id, "dev": job.dev, "sid": self.sid}
            # split to fit 500 samples and 256 KiB: an oversize message would cost
            # the connection and be resent forever
            payloads, dropped = pack_samples(
                head, wanted, max_bytes=MAX_HIST_BYTES, max_samples=HIST_BATCH
            )
            for sample in dropped:
                self._unavailable(job.dev, sample["seq"], sample["seq"])
            topic = topics.up(self.spec.group, self.spec.site_id, "hist", job.dev)
            for payload, _n in payloads:
                self.client.publish(topic, payload, qos=1)
                sent += 1
        return sent

    def _unavailable(self, dev: str, from_seq: int, to_seq: int) -> None:
        body = {
            "v": 1,
            "site": self.spec.site_id,
            "sid": self.sid,
            "ts": self.clock_ms(),
            "kind": "backfill_unavailable",
            "dev": dev,
            "from_seq": from_seq,
            "to_seq": to_seq,
            "detail": "evicted from the history buffer",
        }
        self.client.publish(
            topics.up(self.spec.group, self.spec.site_id, "evt"),
            json.dumps(body),
            qos=1,
        )


@dataclass(slots=True)
class SimReport:
    """What a simulation run published."""

    published: int = 0
    acked: int = 0
    hist_messages: int = 0
    sites: int = 0
    per_site: dict[str, int] = field(default_factory=dict)


class Simulator:
    """Many simulated gateways driven by one clock thread."""

    def __init__(
        self,
        specs: Iterable[SiteSpec],
        mqtt_url: str,
        options: SimOptions | None = None,
        aging: Callable[[SiteSpec], AgingHook] | None = None,
        soc_initial: dict[str, float] | None = None,
        loads: Mapping[str, Callable[[int], float]] | None = None,
        started_ms: int | None = None,
    ) -> None:
        """Create one gateway per site.

        ``loads`` gives behind-the-meter sites their facility load [MW] at a time [ms]
        (published as ``meter1``); ``started_ms`` starts the gateways' simulated clock
        (pass the simulated time when :meth:`run` is driven by ``clock_ms``).

        ``aging`` builds each site's degradation hook (one stateful hook per site,
        e.g. ``lambda spec: ThroughputAging(spec.energy_mwh)`` from the degradation
        model, injected by ``fleet/``); ``None`` keeps capacity at nameplate.
        """
        self.options = options or SimOptions()
        if not 0 < self.options.rate_hz <= 1000:
            msg = f"rate_hz={self.options.rate_hz} must be in (0, 1000]"
            raise ValueError(msg)
        specs = list(specs)
        known = {spec.site_id for spec in specs}
        for fault in self.options.faults:
            if fault.site_id not in known:
                msg = (
                    f"fault {fault.site_id}:{fault.dev}:{fault.kind}: "
                    f"site_id={fault.site_id!r} is not a simulated site"
                )
                raise TelemetryInputError(msg)
        master = random.Random(self.options.seed)
        self.gateways = [
            SiteGateway(
                spec,
                mqtt_url,
                self.options,
                random.Random(master.random()),
                aging(spec) if aging is not None else None,
                (soc_initial or {}).get(spec.site_id, 0.5),
                started_ms=started_ms,
                load_mw=(loads or {}).get(spec.site_id),
            )
            for spec in specs
        ]
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    def run(
        self,
        duration_s: float | None = None,
        drain_timeout_s: float = 30.0,
        clock_ms: Callable[[], int] | None = None,
    ) -> SimReport:
        """Connect every gateway, publish at ``rate_hz`` until stopped, then drain.

        ``rate_hz`` is per wall second; with ``clock_ms`` (a simulated clock [ms]) the
        plants advance by the simulated time elapsed and samples carry it.
        """
        if clock_ms is not None:
            for gw in self.gateways:
                gw.clock_ms = clock_ms
        for gw in self.gateways:
            gw.connect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            g.client.is_connected() for g in self.gateways
        ):
            time.sleep(0.05)
        period = 1.0 / self.options.rate_hz
        start = time.monotonic()
        next_tick = start
        hist = 0
        hist_budget = 0.0
        last = start
        sim_last = _now_ms() if clock_ms is None else clock_ms()
        while not self._stop.is_set():
            now = time.monotonic()
            if duration_s is not None and now - start >= duration_s:
                break
            if now < next_tick:
                time.sleep(min(next_tick - now, 0.05))
                continue
            dt = now - last
            last = now
            wall = _now_ms() if clock_ms is None else clock_ms()
            step_s = period if clock_ms is None else max(0.0, (wall - sim_last) / 1000)
            sim_last = wall
            hist_budget = min(HIST_RATE_PER_S, hist_budget + dt * HIST_RATE_PER_S)
            for gw in self.gateways:
                if gw.paused:
                    continue
                gw.step(step_s, wall)
                gw.publish_samples(wall)
                hist += gw.serve_backfill(int(hist_budget))
            hist_budget -= int(hist_budget)
            next_tick += period
            if next_tick < now - 1.0:
                next_tick = now  # fell behind: skip rather than burst
        for gw in self.gateways:
            gw.flush_live()
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and any(g.outbox for g in self.gateways):
            time.sleep(0.05)
        report = SimReport(hist_messages=hist, sites=len(self.gateways))
        for gw in self.gateways:
            gw.disconnect()
            report.published += gw.published
            report.acked += gw.acked
            report.per_site[gw.spec.site_id] = gw.published
        return report
