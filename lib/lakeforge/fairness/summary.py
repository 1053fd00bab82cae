"""From per-group figures to what a person reads: the gap of each metric
between the groups of a grouping (which two groups give it), the named
fairness summaries, and the worst group per metric.

Definitions (fairlearn's, between groups): a `<metric>_difference` is the
largest minus the smallest value among the measured groups; the
demographic parity difference is that of the selection rate, its ratio the
smallest over the largest; the equal opportunity difference that of the true
positive rate; the equalized-odds difference the larger of the TPR and FPR
differences. For a multiclass model each rate is taken per class against the
rest and the summary is its worst class. A group below `min_rows`, or whose
metric is undefined (a TPR without positive rows), takes no part in a gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lakeforge.config.fairness import GROUP_METRICS, RATIO, summaries

JOIN = " & "  # between the columns of an intersection, and between its values
CLASS = "_class_"  # multiclass rates: `tpr_class_2`

# the direction of "worse" per metric (rates with no better side have none)
_WORSE_WHEN_LOW = frozenset({"accuracy", "precision", "tpr", "f1", "roc_auc", "r2"})
_WORSE_WHEN_HIGH = frozenset({"fpr", "mae", "rmse"})
_WORSE_WHEN_FAR_FROM_ZERO = frozenset({"mean_error"})


@dataclass(frozen=True)
class Cell:
    """One group of a grouping (`sex` = `Female`; `sex & race` = `Female &
    Caucasian`), its test rows, and its metrics (none when it has fewer than
    `min_rows` rows: then it is reported as too small); `unscored`: its test
    rows the model did not score (handle_invalid skip), left out of `rows`."""

    grouping: str
    group: str
    rows: int
    measured: bool
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    unscored: int = 0


@dataclass(frozen=True)
class Gap:
    """A summary of one grouping: its value and the two groups that give it
    (the highest and lowest value of `metric`, the per-group metric it
    spreads: `tpr`, or `fpr_class_2` for a multiclass model's worst class)."""

    grouping: str
    name: str
    value: float
    metric: str
    high: str
    high_value: float
    low: str
    low_value: float

    def between(self) -> str:
        return f"{self.metric} {self.high} {self.high_value:.4f} vs {self.low} {self.low_value:.4f}"


@dataclass(frozen=True)
class Worst:
    """The group that does worst on `metric` in a grouping."""

    grouping: str
    metric: str
    group: str
    value: float


@dataclass(frozen=True)
class Audit:
    task: str
    groups: tuple[str, ...]
    min_rows: int
    cells: tuple[Cell, ...]
    gaps: tuple[Gap, ...]
    worst: tuple[Worst, ...]
    # (grouping, summary) that fewer than two measured groups could give
    unmeasured: tuple[tuple[str, str], ...] = ()

    def groupings(self) -> list[str]:
        return list(dict.fromkeys(c.grouping for c in self.cells))

    def too_small(self) -> list[Cell]:
        return [c for c in self.cells if not c.measured]

    def unscored(self) -> list[Cell]:
        """The groups with test rows the model did not score."""
        return [c for c in self.cells if c.unscored]

    def find(self, grouping: str, name: str) -> Gap | None:
        return next((g for g in self.gaps if g.grouping == grouping and g.name == name), None)

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys(m for c in self.cells for m in c.metrics))

    def table(self) -> dict[str, list[object]]:
        """One row per group (too small ones included, without metrics), as
        columns: for `mlflow.log_table` and the monitoring table."""
        names = self.metric_names()
        out: dict[str, list[object]] = {
            "grouping": [],
            "group": [],
            "rows": [],
            "not_scored": [],
            "measured": [],
        }
        out.update({n: [] for n in names})
        for cell in self.cells:
            out["grouping"].append(cell.grouping)
            out["group"].append(cell.group)
            out["rows"].append(cell.rows)
            out["not_scored"].append(cell.unscored)
            out["measured"].append(cell.measured)
            for n in names:
                out[n].append(cell.metrics.get(n))
        return out

    def metrics(self, prefix: str = "fairness") -> dict[str, float]:
        """MLflow metrics: `<prefix>.<grouping>.<summary>` for each grouping
        (`sex_and_race` for an intersection) and `<prefix>.<summary>`, the worst
        over the groupings (the largest gap, the smallest ratio); per grouping,
        the rows in its groups too small to measure and its test rows the model
        did not score (each grouping counts every row once: they are not added
        across groupings)."""
        out: dict[str, float] = {}
        for gap in self.gaps:
            out[f"{prefix}.{grouping_key(gap.grouping)}.{gap.name}"] = gap.value
            overall = f"{prefix}.{gap.name}"
            worse = min if gap.name == RATIO else max
            out[overall] = worse(out.get(overall, gap.value), gap.value)
        for grouping, members in _by_grouping(self.cells).items():
            key = f"{prefix}.{grouping_key(grouping)}"
            out[f"{key}.rows_in_groups_too_small"] = float(
                sum(c.rows for c in members if not c.measured)
            )
            out[f"{key}.rows_not_scored"] = float(sum(c.unscored for c in members))
        return out


def grouping_key(grouping: str) -> str:
    """A grouping's name as MLflow takes it in a metric key."""
    return grouping.replace(JOIN, "_and_")


def base_metric(name: str) -> str:
    """`tpr_class_2` -> `tpr`."""
    return name.partition(CLASS)[0]


def summarise(
    cells: Sequence[Cell],
    task: str,
    groups: Sequence[str],
    min_rows: int,
    metrics: Sequence[str] | None = None,
) -> Audit:
    """The gaps, worst groups and unmeasurable summaries of `cells` (each
    grouping's groups, in order); `metrics` are the per-group metrics that were
    computed (default: those the cells hold), so a summary no two groups can
    give is listed as unmeasured."""
    gaps: list[Gap] = []
    worst: list[Worst] = []
    unmeasured: list[tuple[str, str]] = []
    computed = set(metrics or {base_metric(m) for c in cells for m in c.metrics})
    for grouping, members in _by_grouping(cells).items():
        measured = [c for c in members if c.measured]
        names = list(dict.fromkeys(m for c in measured for m in c.metrics))
        spreads = {
            base: _widest([_spread(grouping, measured, n) for n in names if base_metric(n) == base])
            for base in GROUP_METRICS[task]
        }
        for name, needs in summaries(task).items():
            if any(n not in computed for n in needs):
                continue  # a metric it needs is not computed
            gap = _summary(grouping, name, needs, spreads, measured, names)
            if gap is None:
                unmeasured.append((grouping, name))
            else:
                gaps.append(gap)
        for n in names:
            found = _worst(grouping, measured, n)
            if found is not None:
                worst.append(found)
    return Audit(
        task, tuple(groups), min_rows, tuple(cells), tuple(gaps), tuple(worst), tuple(unmeasured)
    )


def _by_grouping(cells: Iterable[Cell]) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {}
    for cell in cells:
        out.setdefault(cell.grouping, []).append(cell)
    return out


def _defined(cells: Iterable[Cell], metric: str) -> list[tuple[str, float]]:
    out = []
    for cell in cells:
        value = cell.metrics.get(metric)
        if value is not None and not math.isnan(value):
            out.append((cell.group, value))
    return out


def _spread(grouping: str, cells: Sequence[Cell], metric: str) -> Gap | None:
    """Highest minus lowest `metric` among `cells` (ties: the first group in
    order); None with fewer than two defined values."""
    values = _defined(cells, metric)
    if len(values) < 2:
        return None
    high = max(values, key=lambda gv: gv[1])
    low = min(values, key=lambda gv: gv[1])
    name = f"{metric}_difference"
    return Gap(grouping, name, high[1] - low[1], metric, high[0], high[1], low[0], low[1])


def _widest(found: Sequence[Gap | None]) -> Gap | None:
    """The largest of a metric's per-class gaps (the one gap of a binary model)."""
    gaps = [g for g in found if g is not None]
    return max(gaps, key=lambda g: g.value) if gaps else None


def _summary(
    grouping: str,
    name: str,
    needs: tuple[str, ...],
    spreads: Mapping[str, Gap | None],
    cells: Sequence[Cell],
    names: Sequence[str],
) -> Gap | None:
    if name == RATIO:
        return _ratio(grouping, cells, [n for n in names if base_metric(n) == needs[0]])
    parts = [spreads[n] for n in needs]
    if any(p is None for p in parts):
        return None
    chosen = max((p for p in parts if p is not None), key=lambda g: g.value)
    return Gap(
        grouping,
        name,
        chosen.value,
        chosen.metric,
        chosen.high,
        chosen.high_value,
        chosen.low,
        chosen.low_value,
    )


def _ratio(grouping: str, cells: Sequence[Cell], metrics: Sequence[str]) -> Gap | None:
    """Smallest over largest selection rate (the worst class of a multiclass
    model); undefined when no group is ever selected."""
    best: Gap | None = None
    for metric in metrics:
        spread = _spread(grouping, cells, metric)
        if spread is None or spread.high_value == 0:
            continue
        ratio = spread.low_value / spread.high_value
        if best is None or ratio < best.value:
            best = Gap(
                grouping,
                RATIO,
                ratio,
                metric,
                spread.high,
                spread.high_value,
                spread.low,
                spread.low_value,
            )
    return best


def _worst(grouping: str, cells: Sequence[Cell], metric: str) -> Worst | None:
    base = base_metric(metric)
    values = _defined(cells, metric)
    if not values:
        return None
    if base in _WORSE_WHEN_LOW:
        group, value = min(values, key=lambda gv: gv[1])
    elif base in _WORSE_WHEN_HIGH:
        group, value = max(values, key=lambda gv: gv[1])
    elif base in _WORSE_WHEN_FAR_FROM_ZERO:
        group, value = max(values, key=lambda gv: abs(gv[1]))
    else:
        return None
    return Worst(grouping, metric, group, value)
