"""An audit as rows of the monitoring table, and back.

Per group: subject `<grouping>=<group>` (`race=Asian`, `sex & race=Female &
Asian`), kind `fairness`, one row for its `rows` and one per metric (null
where the group cannot define it, or is too small). Per gap: subject the
grouping, kind `fairness_gap`, the summary's value and the configured limit
as the threshold. Reading back rebuilds the groups and summarises them again,
so the gaps (and the groups giving them) are the same as when measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lakeforge.config.fairness import GROUP_METRICS, RATIO, Fairness
from lakeforge.fairness.measure import groupings
from lakeforge.fairness.summary import CLASS, JOIN, Audit, Cell, base_metric, summarise

GROUP_KIND = "fairness"
GAP_KIND = "fairness_gap"
ROWS = "rows"
KINDS = frozenset({GROUP_KIND, GAP_KIND})

# subject, kind, measure, value, threshold
Record = tuple[str, str, str, float | None, float | None]


def limits(spec: Fairness) -> dict[str, float]:
    """The gate's limit per summary (max_gap, and min_ratio for the ratio)."""
    out = dict(spec.max_gap)
    if spec.min_ratio is not None:
        out[RATIO] = spec.min_ratio
    return out


def to_records(audit: Audit, spec: Fairness) -> list[Record]:
    out: list[Record] = []
    for cell in audit.cells:
        subject = f"{cell.grouping}={cell.group}"
        out.append((subject, GROUP_KIND, ROWS, float(cell.rows), None))
        out += [(subject, GROUP_KIND, m, v, None) for m, v in cell.metrics.items()]
    bounds = limits(spec)
    out += [(g.grouping, GAP_KIND, g.name, g.value, bounds.get(g.name)) for g in audit.gaps]
    return out


def from_records(rows: Iterable[Mapping[str, object]], spec: Fairness, task: str) -> Audit | None:
    """The audit stored as `rows` (mappings with subject, kind, measure,
    value); None when they hold no group."""
    found: dict[tuple[str, str], dict[str, float | None]] = {}
    for r in rows:
        if r["kind"] != GROUP_KIND:
            continue
        grouping, _, group = str(r["subject"]).partition("=")
        value = r["value"]
        found.setdefault((grouping, group), {})[str(r["measure"])] = (
            None if value is None else float(value)  # type: ignore[arg-type]
        )
    if not found:
        return None
    rank = {JOIN.join(g): i for i, g in enumerate(groupings(spec.groups, spec.intersections))}
    order = GROUP_METRICS[task]
    cells = []
    for (grouping, group), values in sorted(
        found.items(), key=lambda item: (rank.get(item[0][0], len(rank)), item[0][1])
    ):
        n = int(values.pop(ROWS, None) or 0)
        metrics = {
            m: values[m]
            for m in sorted(values, key=lambda m: (_index(order, base_metric(m)), _class(m)))
        }
        cells.append(Cell(grouping, group, n, n >= spec.min_rows, metrics))
    return summarise(cells, task, spec.groups, spec.min_rows, spec.computed(task))


def _index(order: tuple[str, ...], name: str) -> int:
    return order.index(name) if name in order else len(order)


def _class(metric: str) -> float:
    _, _, k = metric.partition(CLASS)
    return float(k) if k else -1.0
