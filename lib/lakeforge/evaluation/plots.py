"""Evaluation plots, drawn from small aggregates that Spark computes over every
scored row (binned counts, never a sample of rows on the driver)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on a cluster driver
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_BINS = 1000


def figures(
    scored: DataFrame,
    task: str,
    label: str,
    importances: Sequence[tuple[str, float]],
    columns: Sequence[tuple[str, float]] = (),
) -> dict[str, Figure]:
    """PNG-ready figures by file name for the task: ROC, PR, calibration and
    confusion matrix (classification), residuals (regression), importances
    per feature slot and per silver column."""
    out: dict[str, Figure] = {}
    if task == "binary":
        score = _positive_score(scored)
        out["roc_curve.png"], out["pr_curve.png"] = _curves(scored, score, label)
        if "probability" in scored.columns:
            out["calibration.png"] = _calibration(scored, score, label)
    if task in ("binary", "multiclass"):
        out["confusion_matrix.png"] = _confusion(scored, label)
    if task == "regression":
        out["residuals.png"] = _residuals(scored, label)
    if importances:
        out["feature_importance.png"] = _importances(importances, "Top features")
    if columns:
        out["column_importance.png"] = _importances(columns, "Importance per column")
    return out


def _positive_score(scored: DataFrame) -> Column:
    source = "probability" if "probability" in scored.columns else "rawPrediction"
    return vector_to_array(F.col(source))[1]


def _curves(scored: DataFrame, score: Column, label: str) -> tuple[Figure, Figure]:
    bounds = scored.agg(F.min(score).alias("lo"), F.max(score).alias("hi")).first()
    assert bounds is not None
    lo, hi = float(bounds["lo"]), float(bounds["hi"])
    width = (hi - lo) or 1.0
    binned = (
        scored.select(
            F.least(F.floor((score - lo) / width * _BINS), F.lit(_BINS - 1)).alias("bin"),
            F.col(label).cast("int").alias("y"),
        )
        .groupBy("bin")
        .agg(F.sum("y").alias("pos"), F.count(F.lit(1)).alias("n"))
        .orderBy(F.desc("bin"))
        .collect()
    )
    total_pos = sum(int(r["pos"]) for r in binned)
    total_neg = sum(int(r["n"]) - int(r["pos"]) for r in binned)
    tpr, fpr, precision = [0.0], [0.0], [1.0]
    tp = fp = 0
    for row in binned:  # threshold sweeps from the highest score down
        tp += int(row["pos"])
        fp += int(row["n"]) - int(row["pos"])
        tpr.append(tp / total_pos if total_pos else 0.0)
        fpr.append(fp / total_neg if total_neg else 0.0)
        precision.append(tp / (tp + fp) if tp + fp else 1.0)
    roc, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test split)")
    ax.legend(loc="lower right")
    pr, ax = plt.subplots(figsize=(5, 5))
    ax.plot(tpr, precision)
    base = total_pos / (total_pos + total_neg) if total_pos + total_neg else 0.0
    ax.axhline(base, linestyle="--", color="grey", label=f"positive rate {base:.3f}")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test split)")
    ax.legend(loc="upper right")
    return roc, pr


def _calibration(scored: DataFrame, score: Column, label: str) -> Figure:
    rows = (
        scored.select(
            F.least(F.floor(score * 10), F.lit(9)).alias("bin"), score.alias("p"), F.col(label)
        )
        .groupBy("bin")
        .agg(F.avg("p").alias("predicted"), F.avg(label).alias("observed"), F.count("*").alias("n"))
        .orderBy("bin")
        .collect()
    )
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([r["predicted"] for r in rows], [r["observed"] for r in rows], marker="o")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration")
    return fig


def _confusion(scored: DataFrame, label: str) -> Figure:
    rows = scored.groupBy(F.col(label).cast("int").alias("y"), F.col("prediction").cast("int"))
    counts = {(r["y"], r["prediction"]): int(r["count"]) for r in rows.count().collect()}
    classes = sorted({c for pair in counts for c in pair})
    matrix = [[counts.get((y, p), 0) for p in classes] for y in classes]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:,}", ha="center", va="center")
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="actual",
        title="Confusion matrix (test split)",
    )
    return fig


def _residuals(scored: DataFrame, label: str) -> Figure:
    residual = F.col(label) - F.col("prediction")
    bounds = scored.agg(F.min(residual).alias("lo"), F.max(residual).alias("hi")).first()
    assert bounds is not None
    lo, hi = float(bounds["lo"]), float(bounds["hi"])
    width = ((hi - lo) or 1.0) / 50
    rows = (
        scored.select(F.least(F.floor((residual - lo) / width), F.lit(49)).alias("bin"))
        .groupBy("bin")
        .count()
        .orderBy("bin")
        .collect()
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar([lo + (r["bin"] + 0.5) * width for r in rows], [r["count"] for r in rows], width=width)
    ax.set(xlabel="actual - predicted", ylabel="rows", title="Residuals (test split)")
    return fig


def _importances(pairs: Sequence[tuple[str, float]], title: str) -> Figure:
    top = list(pairs[:20])[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1.5))
    ax.barh([name for name, _ in top], [value for _, value in top])
    ax.set(xlabel="importance / standardised coefficient", title=title)
    fig.tight_layout()
    return fig
