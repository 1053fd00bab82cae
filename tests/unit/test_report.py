"""The run report lists every drift measurement of the run, before and after a retrain."""

from __future__ import annotations

from datetime import datetime

from lakeforge.monitoring.drift import Drift
from lakeforge.report import PipelineRun, render
from lakeforge.steps.monitor import MEASURED_ROWS, TRAINED_ROWS, MonitorResult


def test_report_shows_each_drift_table_and_flags_drifted_subjects() -> None:
    before = MonitorResult("b1", "1", [Drift("month", "categorical", 6.2, None)], {}, ["month"])
    after = MonitorResult("b1", "2", [Drift("dep_delay", "numeric", 0.01, 0.03)], {"f1": 0.7}, [])
    text = render(PipelineRun("flights", datetime(2026, 11, 24), monitored=[before, after]))
    assert "vs the training profile of v1" in text and "vs the training profile of v2" in text
    assert "| month | 6.200 |  | yes |" in text
    assert "| dep_delay | 0.010 | 0.030 |  |" in text
    assert "Batch performance (labels known): f1 0.7000" in text
    assert "No new model" in text


def test_report_says_which_rows_a_retrained_models_performance_is_measured_on() -> None:
    measured = {"roc_auc": 0.81, MEASURED_ROWS: 6_000.0, TRAINED_ROWS: 14_000.0}
    after = MonitorResult("b1", "2", [], measured, [])
    text = render(PipelineRun("flights", datetime(2026, 11, 24), monitored=[after]))
    assert (
        "Batch performance (labels known): roc_auc 0.8100 on the 6,000 labelled rows the model "
        "did not train on (14,000 rows of the batch are in its train split: left out)."
    ) in text
