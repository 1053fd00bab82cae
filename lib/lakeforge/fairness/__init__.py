"""Fairness: a model's metrics per group of people (and per combination of
groups), the gaps between groups, and the gate that keeps a model whose gap
is too large from becoming champion.

`measure` computes the per-group figures in Spark (aggregations only: the
driver receives one row per group); `summarise` turns them into gaps and
worst groups (pure Python over those rows); `breaches` checks the gaps
against `train.fairness.max_gap` / `min_ratio`; `plots` draws a bar chart per
metric. Definitions follow fairlearn's (`MetricFrame`,
`demographic_parity_difference`, `equalized_odds_difference`), which the
tests hold these numbers against.
"""

from lakeforge.fairness.gate import Breach, breaches
from lakeforge.fairness.measure import NULL_GROUP, check_group_counts, expected_rows, measure
from lakeforge.fairness.summary import Audit, Cell, Gap, Worst, summarise

__all__ = [
    "NULL_GROUP",
    "Audit",
    "Breach",
    "Cell",
    "Gap",
    "Worst",
    "breaches",
    "check_group_counts",
    "expected_rows",
    "measure",
    "summarise",
]
