"""Build, check and publish setpoints (QoS 1, never retained, with expiry; spec 7)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from telemetry import topics
from telemetry.errors import TelemetryInputError
from telemetry.payloads import SetpointPayload, dumps
from telemetry.registry import SiteRegistry, SiteSpec

logger = logging.getLogger(__name__)


def build_setpoint(
    spec: SiteSpec,
    *,
    p_ac_w_setpoint: float,
    issued_ts: int,
    valid_from: int,
    expires_at: int,
    ramp_w_per_s: float | None = None,
    soc_min_pct: float | None = None,
    soc_max_pct: float | None = None,
    mode: str = "power",
    source: str = "bessfleet",
    cmd_id: str | None = None,
) -> SetpointPayload:
    """Return a setpoint for ``spec``, refusing anything outside the site's limits.

    Parameters
    ----------
    spec
        The site (ratings [MW] and SoC window, fractions 0-1).
    p_ac_w_setpoint
        AC power [W], + = discharge; must lie in ``[-charge_mw, +discharge_mw]``.
    issued_ts, valid_from, expires_at
        Times [ms since epoch, UTC]; ``expires_at`` > ``valid_from``.
    ramp_w_per_s
        Ramp limit [W/s]; defaults to full power in 10 s.
    soc_min_pct, soc_max_pct
        SoC window [%]; default (and must lie within) the site's window.

    Raises
    ------
    TelemetryInputError
        When a field is outside the site's limits (the setpoint is never sent).
    """
    site = spec.site_id
    low_w, high_w = -spec.charge_mw * 1e6, spec.discharge_mw * 1e6
    if not low_w <= p_ac_w_setpoint <= high_w:
        msg = (
            f"site {site}: p_ac_w_setpoint={p_ac_w_setpoint} outside "
            f"[{low_w:.0f}, {high_w:.0f}] W (charge_mw={spec.charge_mw}, "
            f"discharge_mw={spec.discharge_mw})"
        )
        raise TelemetryInputError(msg)
    lo_pct, hi_pct = 100 * spec.soc_min, 100 * spec.soc_max
    soc_lo = lo_pct if soc_min_pct is None else soc_min_pct
    soc_hi = hi_pct if soc_max_pct is None else soc_max_pct
    if not lo_pct - 1e-9 <= soc_lo <= soc_hi <= hi_pct + 1e-9:
        msg = (
            f"site {site}: soc_min_pct={soc_lo}, soc_max_pct={soc_hi} must satisfy "
            f"{lo_pct:g} <= soc_min_pct <= soc_max_pct <= {hi_pct:g}"
        )
        raise TelemetryInputError(msg)
    if expires_at <= valid_from or expires_at <= issued_ts:
        msg = (
            f"site {site}: expires_at={expires_at} must be after valid_from="
            f"{valid_from} and issued_ts={issued_ts}"
        )
        raise TelemetryInputError(msg)
    ramp = ramp_w_per_s if ramp_w_per_s is not None else high_w / 10
    if ramp <= 0:
        msg = f"site {site}: ramp_w_per_s={ramp} must be > 0"
        raise TelemetryInputError(msg)
    return SetpointPayload.model_validate(
        {
            "v": 1,
            "cmd_id": cmd_id or str(uuid.uuid4()),
            "site": site,
            "issued_ts": issued_ts,
            "valid_from": valid_from,
            "expires_at": expires_at,
            "mode": mode,
            "p_ac_w_setpoint": float(p_ac_w_setpoint),
            "ramp_w_per_s": float(ramp),
            "soc_min_pct": float(soc_lo),
            "soc_max_pct": float(soc_hi),
            "source": source,
        }
    )


class SetpointPublisher:
    """Publish setpoints on ``down/cmd``; every command is recorded before it leaves.

    ``record`` (e.g. ``fleet.store.telemetry.record_setpoint`` bound to a store) is
    called with each setpoint before it is published, so the audit log never misses
    a command that reached a site.
    """

    def __init__(
        self,
        client: mqtt.Client,
        registry: SiteRegistry,
        record: Callable[[SetpointPayload], None] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.registry = registry
        self.record = record
        self.clock_ms = clock_ms

    def send(self, setpoint: SetpointPayload, *, now_ms: int) -> mqtt.MQTTMessageInfo:
        """Publish ``setpoint`` (QoS 1, retain False, Message Expiry Interval set).

        Raises
        ------
        TelemetryInputError
            When the site is unknown or the setpoint has already expired.
        """
        spec = self.registry.get(setpoint.site)
        if spec is None:
            msg = f"site={setpoint.site!r} is not in the registry"
            raise TelemetryInputError(msg)
        expiry_s = (setpoint.expires_at - now_ms) // 1000
        if expiry_s < 1:
            msg = f"setpoint {setpoint.cmd_id}: expires_at={setpoint.expires_at} is not in the future"
            raise TelemetryInputError(msg)
        if self.record is not None:
            self.record(setpoint)
        props: Any = None
        if self.client.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.MessageExpiryInterval = int(expiry_s)
        topic = topics.down(spec.group, spec.site_id, "cmd")
        logger.info(
            "setpoint %s to %s: %.0f W until %d",
            setpoint.cmd_id,
            spec.site_id,
            setpoint.p_ac_w_setpoint,
            setpoint.expires_at,
        )
        return self.client.publish(
            topic, dumps(setpoint), qos=1, retain=False, properties=props
        )
