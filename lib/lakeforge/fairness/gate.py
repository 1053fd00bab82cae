"""The fairness half of the champion gate: which configured gaps a model's
audit exceeds, each said as a person would (which gap, in which grouping,
between which groups, by how much).

A gap the test split cannot give (fewer than two groups with `min_rows`
rows, or the metric undefined in all but one) is a breach too: a limit that
was asked for and could not be checked holds the model back rather than
letting it through unseen; so is a limit over an audit that measured
nothing (each configured grouping is checked, not those the cells hold), and,
when any limit is configured, a group whose test rows the model did not all
score (handle_invalid skip): its gaps are measured without those rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakeforge.config.fairness import RATIO, Fairness, summaries
from lakeforge.fairness.measure import groupings
from lakeforge.fairness.summary import JOIN, Audit, Gap, base_metric

NOT_SCORED = "rows_not_scored"  # a Breach's name: test rows the model did not score


@dataclass(frozen=True)
class Breach:
    grouping: str
    name: str
    limit: float
    gap: Gap | None  # None: the test split could not measure it
    # the measured groups in which a metric the summary needs is undefined
    undefined: tuple[str, ...] = ()
    group: str = ""  # NOT_SCORED: the group, and its rows the model did not score
    unscored: int = 0

    def __str__(self) -> str:
        if self.name == NOT_SCORED:
            return (
                f"{self.unscored} test rows of {self.grouping}={self.group} were not scored "
                f"by the model (handle_invalid skip): its gaps leave them out"
            )
        if self.gap is None:
            why = "fewer than two groups with enough rows and a defined value"
            if self.undefined:
                why += "; " + "; ".join(self.undefined)
            return (
                f"{self.name} on {self.grouping} cannot be measured ({why}), limit {self.limit:g}"
            )
        g = self.gap
        if self.name == RATIO:
            return (
                f"{RATIO} on {g.grouping} is {g.value:.4f} ({g.between()}), "
                f"{self.limit - g.value:.4f} below min_ratio {self.limit:g}"
            )
        return (
            f"{g.name} on {g.grouping} is {g.value:.4f} ({g.between()}), "
            f"{g.value - self.limit:.4f} above max_gap {self.limit:g}"
        )


def breaches(audit: Audit, spec: Fairness) -> list[Breach]:
    """Every (grouping, summary) whose gap is past `spec.max_gap` (or whose
    ratio is below `spec.min_ratio`), in grouping order; empty: the model may
    become champion as far as fairness goes."""
    limits = dict(spec.max_gap)
    if spec.min_ratio is not None:
        limits[RATIO] = spec.min_ratio
    out: list[Breach] = []
    if not limits:
        return out
    needs = summaries(audit.task)
    for grouping in (JOIN.join(g) for g in groupings(spec.groups, spec.intersections)):
        for name, limit in limits.items():
            gap = audit.find(grouping, name)
            if gap is None:
                found = _undefined(audit, grouping, needs.get(name, ()))
                out.append(Breach(grouping, name, limit, None, found))
            elif (gap.value < limit) if name == RATIO else (gap.value > limit):
                out.append(Breach(grouping, name, limit, gap))
        for cell in audit.unscored():
            if cell.grouping == grouping:
                out.append(Breach(grouping, NOT_SCORED, 0.0, None, (), cell.group, cell.unscored))
    return out


def _undefined(audit: Audit, grouping: str, needs: tuple[str, ...]) -> tuple[str, ...]:
    """`tpr undefined for b, c`: per metric `needs` holds, the measured groups
    of `grouping` in which it is undefined (no positive rows, say)."""
    out = []
    cells = [c for c in audit.cells if c.grouping == grouping and c.measured]
    names = dict.fromkeys(m for c in cells for m in c.metrics if base_metric(m) in needs)
    for name in names:
        groups = [c.group for c in cells if c.metrics.get(name) is None]
        if groups:
            out.append(f"{name} undefined for {', '.join(groups)}")
    return tuple(out)
