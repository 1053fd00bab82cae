"""The run report lists every drift measurement of the run, before and after a retrain."""

from __future__ import annotations

from datetime import datetime

from lakeforge.monitoring.drift import Drift
from lakeforge.report import PipelineRun, render
from lakeforge.steps.monitor import MonitorResult


def test_report_shows_each_drift_table_and_flags_drifted_subjects() -> None:
    before = MonitorResult("b1", "1", [Drift("month", "categorical", 6.2, None)], {}, ["month"])
    after = MonitorResult("b1", "2", [Drift("dep_delay", "numeric", 0.01, 0.03)], {"f1": 0.7}, [])
    text = render(PipelineRun("flights", datetime(2026, 11, 24), monitored=[before, after]))
    assert "vs the training snapshot of v1" in text and "vs the training snapshot of v2" in text
    assert "| month | 6.200 |  | yes |" in text
    assert "| dep_delay | 0.010 | 0.030 |  |" in text
    assert "Batch performance (labels known): f1 0.7000" in text
    assert "No new model" in text
