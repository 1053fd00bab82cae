"""A bar chart per fairness metric: each measured group's value, one colour
per grouping (each column, then the intersection), drawn from the audit's
per-group rows (never from data rows)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on a cluster driver
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lakeforge.fairness.summary import Audit


def figures(audit: Audit, title: str = "test split") -> dict[str, Figure]:
    """PNG-ready figures by file name, `fairness_<metric>.png`, one per metric."""
    out: dict[str, Figure] = {}
    groupings = audit.groupings()
    colours = {g: f"C{i % 10}" for i, g in enumerate(groupings)}
    for metric in audit.metric_names():
        bars = [
            (f"{c.grouping} = {c.group}", value, colours[c.grouping])
            for c in audit.cells
            if (value := c.metrics.get(metric)) is not None
        ]
        if not bars:
            continue
        bars.reverse()  # barh draws bottom up: the first grouping on top
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(bars) + 1.6))
        ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
        for i, (_, value, _) in enumerate(bars):
            ax.text(value, i, f" {value:.3f}", va="center", fontsize=8)
        small = len(audit.too_small())
        note = f"\n{small} group(s) under {audit.min_rows} rows not shown" if small else ""
        ax.set(xlabel=metric, title=f"{metric} per group ({title}){note}")
        ax.margins(x=0.15)
        fig.tight_layout()
        out[f"fairness_{metric}.png"] = fig
    return out
