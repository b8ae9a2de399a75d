"""Fault injection in the site simulator: each fault's physical effect, seeded."""

from __future__ import annotations

import random
from typing import Any

import pytest

from telemetry.errors import TelemetryInputError
from telemetry.registry import SiteSpec, site_spec_from
from telemetry.simulator import Fault, SimOptions, Simulator, SiteGateway, parse_fault
from tests.factories import make_fleet

START_MS = 1_790_000_000_000 // 86_400_000 * 86_400_000
DAY_S = 86_400
Samples = list[tuple[int, dict[str, dict[str, Any]]]]
STEP_S = 300.0


def _spec() -> SiteSpec:
    return site_spec_from(make_fleet(1).sites[0])


def _gateway(*faults: Fault, aging: bool = False, **options: object) -> SiteGateway:
    opts = SimOptions(
        seed=4,
        banks=4,
        faults=faults,
        comm_loss_per_h=0.0,
        cell_alarm_per_h=0.0,
        local_period_s=4 * 3600.0,
        local_amplitude=0.8,
        local_soc_target=0.5,
        **options,  # type: ignore[arg-type]
    )

    def hook(t_days: float, throughput_mwh: float, soc: float) -> float:
        del soc
        return 1.0 - 0.0002 * t_days - 0.00001 * throughput_mwh

    return SiteGateway(
        _spec(),
        "mqtt://127.0.0.1:1",
        opts,
        random.Random(1),
        aging=hook if aging else None,
        started_ms=START_MS,
    )


def _run(gw: SiteGateway, first_day: float, days: float) -> Samples:
    """Step days ``first_day`` … ``first_day + days``; sample every 15 minutes."""
    out = []
    k0 = int(first_day * DAY_S / STEP_S)
    steps = int(days * DAY_S / STEP_S)
    for k in range(k0 + 1, k0 + steps + 1):
        now = START_MS + int(k * STEP_S * 1000)
        gw.step(STEP_S, now)
        if k % 3 == 0:
            out.append((now, gw.measurements(now)))
    return out


def _mid_soc_spread_mv(samples: Samples, dev: str) -> float:
    spreads = sorted(
        (m[dev]["cell_v_max_v"] - m[dev]["cell_v_min_v"]) * 1000
        for _, m in samples
        if 35 <= m[dev]["soc_pct"] <= 65
    )
    return float(spreads[len(spreads) // 2])


def _temp_at_power_c(samples: Samples, dev: str) -> float:
    peak = max(abs(m[dev]["p_dc_w"]) for _, m in samples)
    hot = [
        m[dev]["cell_t_max_c"] for _, m in samples if abs(m[dev]["p_dc_w"]) >= peak / 2
    ]
    return float(sum(hot) / len(hot))


def test_cell_drift_grows_mid_soc_spread_when_injected_on_one_bank() -> None:
    gw = _gateway(Fault("site-01", "cell_drift", "bank3", 2 * DAY_S, 0.02))
    before = _run(gw, 0, 2)
    after = _run(gw, 2, 6)[-96:]  # the last day: 6 days of drift at 2 %/day
    healthy = _mid_soc_spread_mv(after, "bank1")
    assert _mid_soc_spread_mv(before, "bank3") == pytest.approx(
        _mid_soc_spread_mv(before, "bank1")
    )
    assert gw.banks[2].drift_soc == pytest.approx(0.12, rel=0.02)
    assert _mid_soc_spread_mv(after, "bank3") > healthy + 6.0
    assert _mid_soc_spread_mv(after, "bank2") == pytest.approx(healthy, abs=0.2)


def test_fan_failure_raises_temperature_vs_peers_when_power_equal() -> None:
    gw = _gateway(Fault("site-01", "fan_failure", "bank2", 1 * DAY_S, 3.0))
    before = _run(gw, 0, 1)
    after = _run(gw, 1, 1)
    for samples in (before, after):  # the strings share the power equally
        powers = {m["bank1"]["p_dc_w"] for _, m in samples} ^ {
            m["bank2"]["p_dc_w"] for _, m in samples
        }
        assert powers == set()
    peers = [_temp_at_power_c(after, d) for d in ("bank1", "bank3", "bank4")]
    assert (
        abs(_temp_at_power_c(before, "bank2") - _temp_at_power_c(before, "bank1")) < 1
    )
    assert _temp_at_power_c(after, "bank2") > max(peers) + 5.0
    assert max(peers) - min(peers) < 1.0


def test_fast_fade_lowers_capacity_faster_when_injected() -> None:
    gw = _gateway(Fault("site-01", "fast_fade", "bank4", 1 * DAY_S, 4.0), aging=True)
    _run(gw, 0, 1)
    at_onset = [b.capacity_fraction for b in gw.banks]
    samples = _run(gw, 1, 10)
    healthy_loss = at_onset[0] - gw.banks[0].capacity_fraction
    faded_loss = at_onset[3] - gw.banks[3].capacity_fraction
    assert at_onset[3] == at_onset[0]
    assert healthy_loss > 0
    assert faded_loss == pytest.approx(4.0 * healthy_loss, rel=0.05)
    last = samples[-1][1]
    assert last["bank4"]["soh_pct"] < last["bank1"]["soh_pct"]
    assert gw.state.capacity_fraction == pytest.approx(
        sum(b.capacity_fraction for b in gw.banks) / 4
    )


def test_comm_dropout_marks_about_rate_of_samples_bad_when_injected() -> None:
    gw = _gateway(Fault("site-01", "comm_dropout", "bank1", 0.0, 0.2))
    samples = _run(gw, 0, 2)
    bad = sum(m["bank1"]["soc_pct"] is None for _, m in samples)
    assert 0.1 * len(samples) < bad < 0.3 * len(samples)
    assert all(m["bank2"]["soc_pct"] is not None for _, m in samples)


def test_local_soc_target_keeps_soc_in_window_when_run_for_days() -> None:
    gw = _gateway()
    samples = _run(gw, 0, 5)
    socs = [m["bank1"]["soc_pct"] for _, m in samples[96:]]  # after the first day
    assert 15 < min(socs) < 35
    assert 65 < max(socs) < 85
    assert gw.devices == ("bank1", "bank2", "bank3", "bank4", "pcs1")


def test_gateway_matches_single_bank_when_no_faults_and_defaults() -> None:
    gw = SiteGateway(_spec(), "mqtt://127.0.0.1:1", SimOptions(), random.Random(0))
    assert gw.devices == ("bank1", "pcs1")
    gw.step(1.0, gw.started_ms + 1000)
    meas = gw.measurements(gw.started_ms + 1000)
    assert set(meas) == {"bank1", "pcs1"}
    assert meas["bank1"]["soc_pct"] == round(100 * gw.state.soc, 3)


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        (lambda: Fault("site-01", "fan_failure", "bank1", 0, 0.5), "rate=0.5"),
        (lambda: Fault("site-01", "cell_drift", "bank1", -1, 0.01), "onset_s=-1"),
        (lambda: Fault("site-01", "melt", "bank1", 0, 1), "kind='melt'"),  # type: ignore[arg-type]
        (lambda: SimOptions(banks=0), "banks=0"),
        (
            lambda: SimOptions(
                banks=2, faults=(Fault("site-01", "fan_failure", "bank3", 0, 2),)
            ),
            "dev='bank3'",
        ),
        (lambda: parse_fault("site-01:fan_failure:x:2"), "ONSET_H='x'"),
        (lambda: parse_fault("site-01:fan_failure"), "SITE:KIND:ONSET_H:RATE"),
    ],
)
def test_fault_refuses_input_when_field_out_of_range(fault: object, match: str) -> None:
    with pytest.raises(TelemetryInputError, match=match):
        fault()  # type: ignore[operator]


def test_parse_fault_reads_hours_and_device_when_given() -> None:
    assert parse_fault("site-01:bank2:fan_failure:48:2.5") == Fault(
        "site-01", "fan_failure", "bank2", 48 * 3600.0, 2.5
    )
    assert parse_fault("site-01:cell_drift:0.5:0.01").dev == "bank1"


def test_simulator_refuses_fault_when_site_unknown() -> None:
    options = SimOptions(faults=(Fault("site-99", "fan_failure", "bank1", 0, 2),))
    with pytest.raises(TelemetryInputError, match="site_id='site-99'"):
        Simulator([_spec()], "mqtt://127.0.0.1:1", options)
