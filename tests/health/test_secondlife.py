from __future__ import annotations

from pathlib import Path

import pytest

from forecasting.errors import ForecastInputError
from forecasting.health.secondlife import grade_unit, load_rules


def test_grade_unit_is_a_when_healthy_module() -> None:
    grade = grade_unit(soh=0.86, fade_per_year=0.02, spread_mv=15.0, efc=1200)
    assert grade.name == "A"
    assert "front-of-meter" in grade.applications
    assert grade.reasons == ()


def test_grade_unit_is_b_with_reason_when_soh_below_80_percent() -> None:
    grade = grade_unit(soh=0.75, fade_per_year=0.02, spread_mv=15.0, efc=1200)
    assert grade.name == "B"
    assert grade.applications == ("behind-the-meter backup", "EV-charging buffer")
    assert grade.reasons == ("not A: soh 0.750 < 0.800",)


def test_grade_unit_is_c_when_fade_fast_and_critical_alerts() -> None:
    grade = grade_unit(
        soh=0.82, fade_per_year=0.06, spread_mv=20.0, efc=2000, critical_alerts=2
    )
    assert grade.name == "C"
    assert grade.applications == ("EV-charging buffer",)


def test_grade_unit_goes_to_recycling_when_soh_below_60_percent() -> None:
    grade = grade_unit(soh=0.55, fade_per_year=None, spread_mv=None, efc=100)
    assert grade.name == "R"
    assert grade.applications == ("recycling",)
    assert len(grade.reasons) == 3


def test_grade_unit_raises_when_soh_not_a_fraction() -> None:
    with pytest.raises(ForecastInputError, match="soh=85"):
        grade_unit(soh=85, fade_per_year=None, spread_mv=None, efc=0)


def test_load_rules_raises_naming_field_when_limit_missing(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[grade]]\nname = "A"\nmin_soh = 0.8\napplications = ["x"]\n')
    with pytest.raises(ForecastInputError, match=r"grade\[0\]\.max_fade_per_year"):
        load_rules(path)
