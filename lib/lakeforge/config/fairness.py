"""What `train.fairness` may say: the group columns, the per-group metrics,
the smallest group measured and the gaps the champion gate allows.

The names of the metrics and summaries live here (the fairness package
computes them) so that a typo or a metric of another task fails at load time
with its key path. Whether a group column exists is checked by the dataset
config, which knows the columns.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from lakeforge.config.base import Model

# Per-group metrics by task. Binary: `tpr` is recall (true positive rate),
# `fpr` the false positive rate, `selection_rate` the share predicted 1,
# `base_rate` the share labelled 1. Multiclass: accuracy, and the four rates
# of each class against the rest. Regression: `mean_error` is prediction -
# label (positive: over-predicts).
GROUP_METRICS: dict[str, tuple[str, ...]] = {
    "binary": (
        "base_rate",
        "selection_rate",
        "accuracy",
        "precision",
        "tpr",
        "fpr",
        "f1",
        "roc_auc",
    ),
    "multiclass": ("accuracy", "base_rate", "selection_rate", "tpr", "fpr"),
    "regression": ("mean_label", "mean_prediction", "mae", "rmse", "mean_error", "r2"),
}

# The named summaries and the per-group metrics each needs.
NAMED_SUMMARIES: dict[str, tuple[str, ...]] = {
    "demographic_parity_difference": ("selection_rate",),
    "demographic_parity_ratio": ("selection_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
    "equal_opportunity_difference": ("tpr",),
}
# metrics whose spread is a named summary, not a `<metric>_difference` of its own
NAMED_SPREADS = frozenset({"selection_rate", "tpr"})
# spreads of the data, not of the model: reported, never a gate
DATA_SPREADS = frozenset({"base_rate_difference", "mean_label_difference"})
RATIO = "demographic_parity_ratio"


def summaries(task: str) -> dict[str, tuple[str, ...]]:
    """Every summary of `task` and the metrics it needs: the named ones
    (classification), then `<metric>_difference` for the other metrics."""
    out = dict(NAMED_SUMMARIES) if task != "regression" else {}
    for name in GROUP_METRICS[task]:
        if task == "regression" or name not in NAMED_SPREADS:
            out[f"{name}_difference"] = (name,)
    return out


class Fairness(Model):
    """Per-group metrics on the test split (and on each monitored batch with
    labels), their gaps, and the gaps a new champion may have."""

    # silver columns (or derived ones); they need not be model features
    groups: Annotated[list[str], Field(min_length=1)]
    # also every combination of the group values (sex & race) when there are two or more
    intersections: bool = True
    # per-group metrics to compute; default: every metric of the task
    metrics: list[str] | None = None
    # a group (or combination) with fewer test rows is reported as too small, not measured
    min_rows: Annotated[int, Field(ge=1)] = 30
    # the most distinct values a grouping may have in the labelled rows
    # (more is refused before the search: a postcode is not a group)
    max_groups: Annotated[int, Field(ge=2)] = 100
    # summary name -> the largest gap the champion may have (e.g. equalized_odds_difference: 0.1)
    max_gap: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    # the smallest demographic parity ratio the champion may have (0.8: the four-fifths rule)
    min_ratio: Annotated[float, Field(gt=0.0, le=1.0)] | None = None

    @model_validator(mode="after")
    def _distinct_groups(self) -> Fairness:
        repeated = sorted({g for g in self.groups if self.groups.count(g) > 1})
        if repeated:
            raise ValueError(f"groups repeats {', '.join(repeated)}")
        return self

    def check(self, task: str, label: str) -> str | None:
        """What does not fit `task` (metric and summary names, the label as a
        group), as a message naming the key; None when all fits."""
        known = GROUP_METRICS[task]
        if label in self.groups:
            return f"groups: {label!r} is the label, not a group"
        wrong = [m for m in self.metrics or [] if m not in known]
        if wrong:
            return f"metrics: {', '.join(wrong)} not a {task} metric; use any of {', '.join(known)}"
        gated = {k: v for k, v in summaries(task).items() if k not in DATA_SPREADS and k != RATIO}
        for name in self.max_gap:
            if name == RATIO:
                return f"max_gap: {RATIO} is a ratio (1 is equal): set min_ratio instead"
            if name not in gated:
                return f"max_gap: {name!r} is not a {task} gap; use any of {', '.join(gated)}"
        if self.min_ratio is not None and task == "regression":
            return "min_ratio is for classification (the demographic parity ratio)"
        computed = set(self.computed(task))
        needs = {k: gated[k] for k in self.max_gap}
        if self.min_ratio is not None:
            needs[RATIO] = NAMED_SUMMARIES[RATIO]
        for name, wanted in needs.items():
            missing = [m for m in wanted if m not in computed]
            if missing:
                return f"{name} needs metrics {', '.join(missing)}: add them to metrics"
        return None

    def computed(self, task: str) -> tuple[str, ...]:
        """The per-group metrics to compute, in the task's order."""
        chosen = self.metrics
        return tuple(m for m in GROUP_METRICS[task] if chosen is None or m in chosen)
