"""Importances come back under the silver columns the features were built
from, whatever slot of the vector they landed in."""

from __future__ import annotations

import pytest

from lakeforge.config.training import Features
from lakeforge.evaluation.importance import by_column, slot_column

FEATURES = Features.model_validate(
    {
        "numeric": {"columns": ["dep_delay", "distance"]},
        "categorical": {"columns": ["carrier"]},
        "dates": [{"column": "flight_date", "parts": ["month", "dayofweek"]}],
        "buckets": [{"column": "sched_dep_time", "splits": [600, 1200]}],
    }
)


def test_each_kind_of_slot_maps_to_its_source_column() -> None:
    assert slot_column("dep_delay", FEATURES) == "dep_delay"
    assert slot_column("carrier=UA", FEATURES) == "carrier"
    assert slot_column("flight_date_month=10", FEATURES) == "flight_date"
    assert slot_column("flight_date_dayofweek=1", FEATURES) == "flight_date"
    assert slot_column("sched_dep_time bucket [-Infinity, 600.0)", FEATURES) == "sched_dep_time"


def test_slot_weights_add_up_in_magnitude_per_column_largest_first() -> None:
    slots = [
        ("carrier=UA", -0.5),
        ("dep_delay", 0.9),
        ("carrier=AA", 0.3),
        ("flight_date_month=10", 0.05),
        ("flight_date_dayofweek=2", -0.05),
    ]
    got = by_column(slots, FEATURES)
    assert [c for c, _ in got] == ["dep_delay", "carrier", "flight_date"]
    assert dict(got) == pytest.approx({"dep_delay": 0.9, "carrier": 0.8, "flight_date": 0.1})
