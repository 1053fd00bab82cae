"""The fairness half of the champion gate: which configured gaps a model's
audit exceeds, each said as a person would (which gap, in which grouping,
between which groups, by how much).

A gap the test split cannot give (fewer than two groups with `min_rows`
rows, or the metric undefined in all but one) is a breach too: a limit that
was asked for and could not be checked holds the model back rather than
letting it through unseen.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakeforge.config.fairness import RATIO, Fairness
from lakeforge.fairness.summary import Audit, Gap


@dataclass(frozen=True)
class Breach:
    grouping: str
    name: str
    limit: float
    gap: Gap | None  # None: the test split could not measure it

    def __str__(self) -> str:
        if self.gap is None:
            return (
                f"{self.name} on {self.grouping} cannot be measured (fewer than two groups "
                f"with enough rows and a defined value), limit {self.limit:g}"
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
    out = []
    for grouping in audit.groupings():
        for name, limit in limits.items():
            gap = audit.find(grouping, name)
            if gap is None:
                out.append(Breach(grouping, name, limit, None))
            elif (gap.value < limit) if name == RATIO else (gap.value > limit):
                out.append(Breach(grouping, name, limit, gap))
    return out
