"""The fleet domain model: validation rules, derived values and helpers."""

from __future__ import annotations

import math

import pydantic
import pytest

from fleet.domain import (
    Battery,
    Fleet,
    Market,
    Meter,
    Service,
    Site,
    Tariff,
)
from tests.factories import (
    DELETE,
    battery_data,
    fleet_data,
    make_fleet,
    make_site,
    provenance_data,
    site_data,
    tariff_data,
)


def test_battery_resolves_one_way_efficiencies_when_round_trip_given() -> None:
    battery = Battery.model_validate(
        battery_data(
            eta_charge=DELETE, eta_discharge=DELETE, round_trip_efficiency=0.81
        )
    )
    assert battery.eta_charge == pytest.approx(0.9)
    assert battery.eta_discharge == pytest.approx(0.9)
    assert battery.round_trip_efficiency == pytest.approx(0.81)


def test_battery_derives_round_trip_when_one_way_efficiencies_given() -> None:
    battery = Battery.model_validate(battery_data(eta_charge=0.96, eta_discharge=0.94))
    assert battery.round_trip_efficiency == pytest.approx(0.96 * 0.94)


def test_battery_accepts_both_efficiency_forms_when_consistent() -> None:
    data = battery_data(eta_charge=0.9, eta_discharge=0.9, round_trip_efficiency=0.81)
    assert Battery.model_validate(data).round_trip_efficiency == pytest.approx(0.81)


def test_battery_rejects_efficiencies_when_inconsistent() -> None:
    data = battery_data(eta_charge=0.95, eta_discharge=0.95, round_trip_efficiency=0.8)
    with pytest.raises(
        pydantic.ValidationError, match=r"round_trip_efficiency=0.8 must equal"
    ):
        Battery.model_validate(data)


def test_battery_rejects_efficiencies_when_only_one_way_given() -> None:
    with pytest.raises(
        pydantic.ValidationError, match="eta_charge is given but eta_discharge"
    ):
        Battery.model_validate(battery_data(eta_discharge=DELETE))


def test_battery_rejects_efficiencies_when_none_given() -> None:
    with pytest.raises(pydantic.ValidationError, match="or round_trip_efficiency"):
        Battery.model_validate(battery_data(eta_charge=DELETE, eta_discharge=DELETE))


def test_battery_reports_only_round_trip_when_it_is_out_of_range() -> None:
    data = battery_data(
        eta_charge=DELETE, eta_discharge=DELETE, round_trip_efficiency=1.3
    )
    with pytest.raises(pydantic.ValidationError) as info:
        Battery.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [("round_trip_efficiency",)]


def test_battery_rejects_soc_window_when_min_not_below_max() -> None:
    with pytest.raises(
        pydantic.ValidationError, match=r"soc_min=0.6 must be less than soc_max=0.6"
    ):
        Battery.model_validate(battery_data(soc_min=0.6, soc_max=0.6))


def test_battery_rejects_soc_initial_when_outside_window() -> None:
    with pytest.raises(
        pydantic.ValidationError, match=r"soc_initial=0.99 must be between"
    ):
        Battery.model_validate(battery_data(soc_initial=0.99))


@pytest.mark.parametrize("field", ["soc_min", "soc_max", "soc_initial"])
@pytest.mark.parametrize("value", [-0.1, 1.2])
def test_battery_rejects_fraction_when_outside_unit_interval(
    field: str, value: float
) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        Battery.model_validate(battery_data(**{field: value}))


def test_battery_rejects_energy_when_above_cell_nameplate() -> None:
    # 416 cells x 10 strings x 314 Ah x 3.2 V = 4.18 MWh < 20 MWh
    with pytest.raises(
        pydantic.ValidationError, match=r"exceeds the cells' nameplate 4.17997 MWh"
    ):
        Battery.model_validate(battery_data(strings=10))


def test_battery_rejects_chemistry_when_not_lfp() -> None:
    with pytest.raises(pydantic.ValidationError, match="chemistry"):
        Battery.model_validate(battery_data(chemistry="NMC"))


def test_battery_derived_values_match_hand_computation() -> None:
    battery = Battery.model_validate(battery_data())
    assert battery.duration_h == pytest.approx(2.0)
    assert battery.usable_energy_mwh == pytest.approx(20.0 * 0.9)
    assert battery.cell_nameplate_mwh == pytest.approx(416 * 53 * 314 * 3.2 / 1e6)


def test_site_derives_timezone_and_mqtt_group_when_from_market() -> None:
    ercot = make_site()
    caiso = make_site(market="CAISO", node="UNSPECIFIED_DERVET_CAISO_CASE")
    assert (ercot.timezone, ercot.mqtt_group) == ("America/Chicago", "ercot")
    assert (caiso.timezone, caiso.mqtt_group) == ("America/Los_Angeles", "caiso")
    assert caiso.market is Market.CAISO


def test_site_keeps_mqtt_group_when_given() -> None:
    assert make_site(mqtt_group="ercot-west").mqtt_group == "ercot-west"


@pytest.mark.parametrize("bad_id", ["Site-01", "-site", "a" * 33, "site/01", ""])
def test_site_rejects_id_when_not_an_mqtt_topic_level(bad_id: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="id"):
        make_site(bad_id)


def test_site_accepts_id_when_32_characters() -> None:
    assert make_site("a" * 32).id == "a" * 32


def test_site_is_btm_when_behind_the_meter() -> None:
    site = make_site(btm=True)
    assert site.is_btm
    assert site.meter is Meter.BEHIND
    assert not make_site().is_btm


def test_site_requires_tariff_and_load_when_behind_the_meter() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        make_site(btm=True, tariff=DELETE, load=DELETE)
    text = str(info.value)
    assert "tariff is required for a behind-the-meter site" in text
    assert "load is required for a behind-the-meter site" in text


def test_site_rejects_tariff_when_front_of_meter() -> None:
    with pytest.raises(
        pydantic.ValidationError, match="tariff is only for a behind-the-meter"
    ):
        make_site(tariff=tariff_data())


def test_site_rejects_peak_shaving_when_front_of_meter() -> None:
    with pytest.raises(pydantic.ValidationError, match='"peak_shaving" is only for'):
        make_site(services=["energy", "peak_shaving"])


def test_site_rejects_energy_service_when_behind_the_meter() -> None:
    with pytest.raises(
        pydantic.ValidationError, match=r'"energy" .wholesale arbitrage'
    ):
        make_site(btm=True, services=["peak_shaving", "energy"])


def test_site_requires_resource_id_when_enrolled_in_wholesale_services() -> None:
    with pytest.raises(pydantic.ValidationError, match="resource_id is required"):
        make_site(resource_id=DELETE)
    btm = make_site(
        btm=True, services=["peak_shaving", "reg_up"], resource_id="ERCOT_X1"
    )
    assert btm.wholesale_services == {Service.REG_UP}


def test_site_rejects_services_when_listed_twice() -> None:
    with pytest.raises(
        pydantic.ValidationError, match="services lists energy more than once"
    ):
        make_site(services=["energy", "energy"])


def test_site_rejects_provenance_when_shares_do_not_sum_to_one() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"sum to 0.9, must sum to 1"):
        make_site(provenance=provenance_data(shares=(0.4, 0.1, 0.3, 0.1)))


def test_site_accepts_provenance_when_sum_within_tolerance() -> None:
    site = make_site(provenance=provenance_data(shares=(0.4, 0.1, 0.3, 0.2 + 5e-7)))
    assert math.isclose(site.non_feoc_share, 1.0, abs_tol=1e-6)


def test_site_rejects_degradation_curve_when_decreasing() -> None:
    with pytest.raises(pydantic.ValidationError, match="must be non-decreasing"):
        make_site(degradation_usd_per_mwh=[4.0, 2.0])
    assert make_site(degradation_usd_per_mwh=[0.0]).degradation_usd_per_mwh == [0.0]


def test_site_rejects_unknown_field_when_extra() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"extra_forbidden|Extra inputs"):
        make_site(colour="blue")


def test_site_cannot_be_changed_when_frozen() -> None:
    site = make_site()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        site.name = "other"  # type: ignore[misc]


def test_site_round_trips_when_dumped_to_json_and_validated_again() -> None:
    for site in (make_site(), make_site("b", btm=True)):
        again = Site.model_validate_json(site.model_dump_json())
        assert again == site
        assert Site.model_validate(site.model_dump(mode="json")) == site


def test_site_has_service_when_enrolled() -> None:
    site = make_site(services=["energy", "spin"])
    assert site.has_service("spin")
    assert site.has_service(Service.ENERGY)
    assert not site.has_service(Service.REG_UP)


def test_tariff_prices_hours_when_in_a_period_or_not() -> None:
    tariff = Tariff.model_validate(tariff_data())
    assert tariff.energy_price_usd_per_mwh(month=7, weekday=2, hour=17) == 120.0
    assert tariff.energy_price_usd_per_mwh(month=7, weekday=6, hour=17) == 60.0
    assert tariff.energy_price_usd_per_mwh(month=1, weekday=2, hour=17) == 60.0
    assert tariff.demand_usd_per_mw_month == pytest.approx(15_000.0)


def test_tariff_rejects_periods_when_they_overlap() -> None:
    periods = [
        {"name": "peak", "energy_usd_per_mwh": 100.0, "hours": [16, 17]},
        {
            "name": "evening",
            "energy_usd_per_mwh": 90.0,
            "hours": [17, 18],
            "months": [7],
        },
    ]
    with pytest.raises(
        pydantic.ValidationError, match=r'"peak" and periods\[1\] "evening" overlap'
    ):
        Tariff.model_validate(tariff_data(periods=periods))


@pytest.mark.parametrize(
    ("field", "value"), [("billing_cycle_day", 29), ("demand_usd_per_kw_month", -1)]
)
def test_tariff_rejects_field_when_out_of_range(field: str, value: float) -> None:
    with pytest.raises(pydantic.ValidationError, match=field):
        Tariff.model_validate(tariff_data(**{field: value}))


def test_fleet_by_id_returns_site_when_present() -> None:
    fleet = make_fleet(3)
    assert fleet.by_id("site-02").id == "site-02"
    assert fleet.site_ids == ["site-01", "site-02", "site-03"]


def test_fleet_by_id_raises_key_error_when_absent() -> None:
    with pytest.raises(KeyError, match="has no site 'nope'"):
        make_fleet(2).by_id("nope")


def test_fleet_rejects_sites_when_ids_duplicate() -> None:
    data = fleet_data(sites=[site_data("a"), site_data("a", resource_id="ERCOT_OTHER")])
    with pytest.raises(
        pydantic.ValidationError, match='site "a": id is used by site #1 and site #2'
    ):
        Fleet.model_validate(data)


def test_fleet_rejects_sites_when_resource_ids_duplicate() -> None:
    data = fleet_data(
        sites=[site_data("a", resource_id="R1"), site_data("b", resource_id="R1")]
    )
    with pytest.raises(
        pydantic.ValidationError, match='resource_id="R1" is also used by site "a"'
    ):
        Fleet.model_validate(data)


def test_fleet_groups_sites_when_they_share_a_poi_group() -> None:
    grouped = {"export_mw": 10.0, "import_mw": 10.0, "group": "shared-poi"}
    fleet = make_fleet(
        3,
        poi_groups=[{"name": "shared-poi", "export_mw": 15.0, "import_mw": 12.0}],
        sites=[
            site_data("a", poi=grouped),
            site_data("b", poi=grouped),
            site_data("c"),
        ],
    )
    assert fleet.poi_group_sites("shared-poi") == ["a", "b"]
    assert fleet.poi_group("shared-poi").export_mw == 15.0


def test_fleet_rejects_poi_group_when_undeclared_or_unused() -> None:
    grouped = {"export_mw": 10.0, "import_mw": 10.0, "group": "west"}
    data = fleet_data(
        poi_groups=[{"name": "east", "export_mw": 5.0, "import_mw": 5.0}],
        sites=[site_data("a", poi=grouped)],
    )
    with pytest.raises(pydantic.ValidationError) as info:
        Fleet.model_validate(data)
    assert 'poi.group="west" is not a declared poi_groups name' in str(info.value)
    assert 'poi group "east" has no sites' in str(info.value)


def test_scenario_fields_validate_as_a_dispatch_site_when_day_values_added() -> None:
    from dispatch.scenario import Site as ScenarioSite

    site = make_site(degradation_usd_per_mwh=[1.0, 2.0])
    fields = site.scenario_site_fields()
    assert fields["eta_charge"] == site.battery.eta_charge
    assert fields["services"] == ["energy", "reg_up", "reg_down", "spin"]
    ScenarioSite.model_validate({**fields, "soc_final_min": 0.3})


def test_scenario_fleet_block_lists_poi_group_sites_when_grouped() -> None:
    grouped = {"export_mw": 10.0, "import_mw": 10.0, "group": "g"}
    fleet = make_fleet(
        2,
        capacity_min_mw=5.0,
        poi_groups=[{"name": "g", "export_mw": 15.0, "import_mw": 12.0}],
        sites=[site_data("a", poi=grouped), site_data("b", poi=grouped)],
    )
    assert fleet.scenario_fleet_block() == {
        "capacity_min_mw": 5.0,
        "poi_groups": [{"sites": ["a", "b"], "export_mw": 15.0, "import_mw": 12.0}],
    }
