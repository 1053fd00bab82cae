"""The run report of a pipeline: one markdown page with the counts of every
step, the quarantine reasons, the model against the champion, its fairness
per group, the drift table, and the training plots next to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from lakeforge.steps.monitor import MEASURED_ROWS, TRAINED_ROWS

if TYPE_CHECKING:
    from lakeforge.fairness import Audit
    from lakeforge.steps.clean import CleanResult
    from lakeforge.steps.ingest import IngestResult
    from lakeforge.steps.monitor import MonitorResult
    from lakeforge.steps.predict import PredictResult
    from lakeforge.steps.train import TrainResult


@dataclass
class PipelineRun:
    dataset: str
    started: datetime
    ingested: IngestResult | None = None
    cleaned: CleanResult | None = None
    trained: list[TrainResult] | None = None
    predicted: PredictResult | None = None
    monitored: list[MonitorResult] | None = None  # in order: before and after a retrain
    psi_threshold: float = 0.2
    plots: tuple[str, ...] = ()  # file names beside the report


def render(run: PipelineRun) -> str:
    """The report as markdown."""
    lines = [
        f"# lakeforge pipeline: {run.dataset}",
        "",
        f"Started {run.started:%Y-%m-%d %H:%M:%S} UTC.",
        "",
    ]
    lines += ["## Data", "", "| step | rows |", "|---|---|"]
    if run.ingested is not None:
        i = run.ingested
        lines.append(
            f"| ingest (batch {i.batch_id or 'none: nothing new'}) | read {i.rows_read:,}, "
            f"bronze +{i.bronze_rows:,}, quarantined +{i.quarantined_rows:,} |"
        )
    if run.cleaned is not None:
        c = run.cleaned
        lines.append(
            f"| clean ({len(c.batches)} batch(es)) | bronze {c.bronze_rows:,} = inserted "
            f"{c.inserted:,} + updated {c.updated:,} + unchanged {c.unchanged:,} + "
            f"quarantined {c.quarantined:,} + duplicates {c.duplicates:,} |"
        )
    if run.predicted is not None:
        p = run.predicted
        lines.append(
            f"| predict (batch {p.batch_id}) | {p.rows:,} scored by v{p.model_version}"
            f"{' (already scored: nothing new)' if p.skipped else ''} |"
        )
    reasons = {
        k: v for k, v in ((run.cleaned.rule_counts or {}) if run.cleaned else {}).items() if v
    }
    if reasons:
        lines += [
            "",
            "Quarantine and warning reasons (rows per rule):",
            "",
            "| rule | rows |",
            "|---|---|",
        ]
        lines += [f"| `{k}` | {v:,} |" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
    lines += ["", "## Models", ""]
    if not run.trained:
        lines.append("No new model: this silver version and config were trained before.")
    for t in run.trained or []:
        d = t.decision
        lines += [
            f"- **{t.model_name} v{t.model_version}** ({t.best}), MLflow run `{t.run_id}`: "
            f"{'**champion**' if d.promoted else 'challenger'}, {d.reason}.",
            "  Test split: "
            + ", ".join(f"{k} {v:.4f}" for k, v in t.test_metrics.items())
            + f" (rows: {', '.join(f'{k} {v:,}' for k, v in t.split_counts.items())}).",
        ]
        if t.fairness is not None:
            lines += ["", *_fairness(t.fairness, "the test split")]
    if run.plots:
        lines += ["", *[f"![{p}]({p})" for p in run.plots]]
    for m in run.monitored or []:
        lines += [
            "",
            f"## Drift (batch {m.batch_id} vs the training profile of v{m.model_version})",
            "",
            f"PSI above {run.psi_threshold} is drift.",
            "",
            "| subject | PSI | KS | drift |",
            "|---|---|---|---|",
        ]
        for item in sorted(m.drifts, key=lambda x: -x.psi):
            ks = "" if item.ks is None else f"{item.ks:.3f}"
            flag = "yes" if item.subject in m.drifted else ""
            lines.append(f"| {item.subject} | {item.psi:.3f} | {ks} | {flag} |")
        if m.performance:
            lines += ["", _performance(m.performance)]
        if m.fairness is not None:
            lines += ["", *_fairness(m.fairness, "the batch's labelled rows")]
    return "\n".join(lines) + "\n"


def _performance(found: dict[str, float]) -> str:
    """The batch's metrics, and which of its rows they are measured on: the
    labelled rows the model did not train on (a model retrained on the batch
    has some of its rows in its train split; those are left out)."""
    metrics = {k: v for k, v in found.items() if k not in (MEASURED_ROWS, TRAINED_ROWS)}
    text = "Batch performance (labels known): " + (
        ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "none"
    )
    if MEASURED_ROWS in found:
        text += f" on the {int(found[MEASURED_ROWS]):,} labelled rows the model did not train on"
        if found.get(TRAINED_ROWS):
            left_out = int(found[TRAINED_ROWS])
            text += f" ({left_out:,} rows of the batch are in its train split: left out)"
        text += "."
    return text


def _fairness(audit: Audit, where: str) -> list[str]:
    """The gaps between groups (and which groups give them), the worst group
    per metric, and the groups too small to measure, with their rows."""
    lines = [
        f"Fairness on {where} (groups {', '.join(audit.groups)}; a group needs "
        f"{audit.min_rows:,} rows to be measured):",
        "",
        "| grouping | gap | value | between |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g.grouping} | {g.name} | {g.value:.4f} | {g.between()} |" for g in audit.gaps]
    if audit.worst:
        lines += ["", "Worst group per metric:", ""]
        for grouping in audit.groupings():
            found = [w for w in audit.worst if w.grouping == grouping]
            if found:
                shown = ", ".join(f"{w.metric} {w.group} {w.value:.4f}" for w in found)
                lines.append(f"- {grouping}: {shown}")
    if audit.unmeasured:
        shown = ", ".join(f"{name} on {grouping}" for grouping, name in audit.unmeasured)
        lines += ["", f"Not measurable (fewer than two groups with a value): {shown}."]
    small = audit.too_small()
    if small:
        shown = ", ".join(f"{c.grouping} = {c.group} ({c.rows:,} rows)" for c in small)
        lines += ["", f"Too small to measure (under {audit.min_rows:,} rows): {shown}."]
    lost = audit.unscored()
    if lost:
        shown = ", ".join(f"{c.grouping} = {c.group} ({c.unscored:,} rows)" for c in lost)
        lines += ["", f"Test rows the model did not score (handle_invalid skip): {shown}."]
    return lines
