"""Per-group metrics of scored rows, computed by Spark: each row is counted
once per grouping it belongs to (each group column, and their intersection),
and one aggregation gives the counts of every group; the driver receives one
row per group and turns the counts into rates. ROC AUC per group is exact:
the Mann-Whitney statistic over the group's distinct scores (a tie counts
one half, as in scikit-learn's `roc_auc_score`).

What each task gets:
- binary: base rate (share labelled 1), selection rate (share predicted 1),
  accuracy, precision, TPR (recall), FPR, F1, ROC AUC from the score;
- multiclass: accuracy, and per class k against the rest its base rate,
  selection rate, TPR and FPR (`tpr_class_2`); no per-group AUC;
- regression: mean label, mean prediction, MAE, RMSE, mean error (prediction
  - label: positive over-predicts), R2 (against the group's own mean label).

A metric a group cannot define (precision with nothing predicted positive,
TPR without positive rows, R2 of a constant label) is None, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config.fairness import Fairness
from lakeforge.errors import ConfigError
from lakeforge.fairness.summary import CLASS, JOIN, Audit, Cell, summarise

NULL_GROUP = "(null)"  # the group of rows whose group column is null
_GROUPING, _GROUP = "__grouping", "__group"


def groupings(groups: Sequence[str], intersections: bool) -> list[tuple[str, ...]]:
    """Each group column alone, then all of them together (two or more)."""
    out: list[tuple[str, ...]] = [(g,) for g in groups]
    if intersections and len(groups) > 1:
        out.append(tuple(groups))
    return out


def _entries(spec: Fairness, columns: Sequence[str] | None = None) -> list[Column]:
    """One (grouping, group values) struct per grouping (those whose columns
    are all in `columns`, when given): the values are an array, so that a
    value holding the separator cannot merge two groups."""
    return [
        F.struct(F.lit(JOIN.join(g)).alias(_GROUPING), _group_value(g).alias(_GROUP))
        for g in groupings(spec.groups, spec.intersections)
        if columns is None or all(c in columns for c in g)
    ]


def display(values: Sequence[str]) -> str:
    """A group's values as shown (`Female & Caucasian`); a value holding the
    separator is quoted, so two groups never read the same."""
    if len(values) == 1:
        return values[0]
    return JOIN.join(f'"{v}"' if JOIN in v or '"' in v else v for v in values)


def check_group_counts(rows: DataFrame, spec: Fairness) -> None:
    """Raise ConfigError naming each grouping (on columns `rows` holds) with
    more distinct values than `spec.max_groups`, null counted as a value: a
    column like a postcode gives thousands of groups, each too small to
    measure, a table and plots no one can read, and a gap that is noise.
    One aggregation; run before the search, so a mistake costs no fits."""
    present = [
        g for g in groupings(spec.groups, spec.intersections) if all(c in rows.columns for c in g)
    ]
    if not present:
        return
    # a struct is never null, so a null value counts as a group of its own
    counts = rows.agg(
        *[F.countDistinct(F.struct(*g)).alias(f"g{i}") for i, g in enumerate(present)]
    ).first()
    assert counts is not None
    over = [
        f"{JOIN.join(g)} has {counts[f'g{i}']:,}"
        for i, g in enumerate(present)
        if counts[f"g{i}"] > spec.max_groups
    ]
    if over:
        raise ConfigError(
            f"train.fairness.groups: {'; '.join(over)} distinct values in the labelled rows, "
            f"more than max_groups {spec.max_groups}: group by a coarser column (a band or "
            "region derived in features.derive), set intersections: false, or raise "
            "max_groups"
        )


def expected_rows(test_rows: DataFrame, spec: Fairness, label: str) -> dict[tuple[str, str], int]:
    """The labelled rows of each group in `test_rows` before the model scores
    them (groupings on columns the rows hold: a derived group column exists
    only after scoring); `measure` compares them with the rows it scored."""
    entries = _entries(spec, test_rows.columns)
    if not entries:
        return {}
    counts = (
        test_rows.where(F.col(label).isNotNull())
        .select(F.inline(F.array(*entries)))
        .groupBy(_GROUPING, _GROUP)
        .count()
    )
    return {(r[_GROUPING], display(r[_GROUP])): int(r["count"]) for r in counts.collect()}


def measure(
    scored: DataFrame,
    spec: Fairness,
    task: str,
    label: str,
    expected: Mapping[tuple[str, str], int] | None = None,
) -> Audit:
    """Per-group metrics and their summaries of `scored` (a model's output with
    `label`, `prediction`, the probability or raw prediction, and the group
    columns); rows without a label are left out. `expected`: each group's rows
    before scoring (`expected_rows`): a group the model scored fewer rows of
    (handle_invalid skip) says how many it lost. Persist `scored` first: it is
    read two or three times."""
    metrics = spec.computed(task)
    entries = _entries(spec)
    score = _score(scored) if task == "binary" and "roc_auc" in metrics else None
    rows = scored.where(F.col(label).isNotNull()).select(
        F.inline(F.array(*entries)),
        F.col(label).cast("double").alias("y"),
        F.col("prediction").cast("double").alias("p"),
        *([] if score is None else [score.alias("s")]),
    )
    if task == "binary":
        found = _binary(rows, metrics, score is not None)
    elif task == "multiclass":
        found = _multiclass(rows, scored, label, metrics)
    else:
        found = _regression(rows, metrics)
    rank = {JOIN.join(g): i for i, g in enumerate(groupings(spec.groups, spec.intersections))}
    expected = expected or {}
    for key in expected.keys() - found.keys():
        found[key] = (0, {})  # every row of the group was lost
    cells = [
        Cell(
            grouping,
            group,
            n,
            n >= spec.min_rows,
            values if n >= spec.min_rows else {},
            max(expected.get((grouping, group), n) - n, 0),
        )
        for (grouping, group), (n, values) in sorted(
            found.items(), key=lambda item: (rank[item[0][0]], item[0][1])
        )
    ]
    return summarise(cells, task, spec.groups, spec.min_rows, metrics)


Found = dict[tuple[str, str], tuple[int, dict[str, float | None]]]


def _group_value(columns: tuple[str, ...]) -> Column:
    return F.array(*(F.coalesce(F.col(c).cast("string"), F.lit(NULL_GROUP)) for c in columns))


def _score(scored: DataFrame) -> Column | None:
    """The positive class's score (probability, else the raw prediction), as
    Spark's vector or gold's array; None when the rows carry neither."""
    for name in ("probability", "rawPrediction"):
        if name in scored.columns:
            column = F.col(name)
            if not isinstance(scored.schema[name].dataType, T.ArrayType):
                column = vector_to_array(column)
            return column[1]
    return None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _binary(rows: DataFrame, metrics: Sequence[str], with_score: bool) -> Found:
    y, p = F.col("y"), F.col("p")
    counts = rows.groupBy(_GROUPING, _GROUP).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(y).alias("pos"),
        F.sum(p).alias("sel"),
        F.sum(y * p).alias("tp"),
    )
    areas = _roc_auc(rows) if with_score else {}
    found: Found = {}
    for r in counts.collect():
        n, pos, sel, tp = int(r["n"]), int(r["pos"]), int(r["sel"]), int(r["tp"])
        fp = sel - tp
        values: dict[str, float | None] = {
            "base_rate": pos / n,
            "selection_rate": sel / n,
            "accuracy": (n - pos - fp + tp) / n,
            "precision": _ratio(tp, sel),
            "tpr": _ratio(tp, pos),
            "fpr": _ratio(fp, n - pos),
            "f1": _ratio(2 * tp, pos + sel),
            "roc_auc": areas.get((r[_GROUPING], display(r[_GROUP]))),
        }
        found[(r[_GROUPING], display(r[_GROUP]))] = (n, {m: values[m] for m in metrics})
    return found


def _roc_auc(rows: DataFrame) -> dict[tuple[str, str], float | None]:
    """Exact ROC AUC per group: for each distinct score, its positives times
    the negatives scored lower plus half the negatives scored the same, over
    positives x negatives. The running count of negatives is a window over
    each group's distinct scores, not over its rows."""
    by_score = (
        rows.where(F.col("s").isNotNull() & ~F.isnan("s"))
        .groupBy(_GROUPING, _GROUP, "s")
        .agg(F.sum("y").alias("pos"), (F.count(F.lit(1)) - F.sum("y")).alias("neg"))
    )
    lower = Window.partitionBy(_GROUPING, _GROUP).orderBy("s")
    below = F.coalesce(
        F.sum("neg").over(lower.rowsBetween(Window.unboundedPreceding, -1)), F.lit(0)
    )
    pairs = by_score.select(
        _GROUPING,
        _GROUP,
        "pos",
        "neg",
        (F.col("pos") * (below + F.col("neg") / 2)).alias("won"),
    )
    totals = pairs.groupBy(_GROUPING, _GROUP).agg(
        F.sum("won").alias("won"), F.sum("pos").alias("pos"), F.sum("neg").alias("neg")
    )
    out: dict[tuple[str, str], float | None] = {}
    for r in totals.collect():
        pos, neg = int(r["pos"]), int(r["neg"])
        out[(r[_GROUPING], display(r[_GROUP]))] = (
            float(r["won"]) / (pos * neg) if pos and neg else None
        )
    return out


def _multiclass(rows: DataFrame, scored: DataFrame, label: str, metrics: Sequence[str]) -> Found:
    """Accuracy, and each class against the rest; the classes are those the
    labels or predictions hold."""
    classes = sorted(
        float(r[0])
        for r in scored.select(F.explode(F.array(F.col(label), F.col("prediction"))))
        .where(F.col("col").isNotNull())
        .distinct()
        .collect()
    )
    y, p = F.col("y"), F.col("p")
    aggs = [F.count(F.lit(1)).alias("n"), F.sum((y == p).cast("long")).alias("correct")]
    for i, k in enumerate(classes):
        aggs += [
            F.sum((y == k).cast("long")).alias(f"pos{i}"),
            F.sum((p == k).cast("long")).alias(f"sel{i}"),
            F.sum(((y == k) & (p == k)).cast("long")).alias(f"tp{i}"),
        ]
    found: Found = {}
    for r in rows.groupBy(_GROUPING, _GROUP).agg(*aggs).collect():
        n = int(r["n"])
        values: dict[str, float | None] = {}
        if "accuracy" in metrics:
            values["accuracy"] = int(r["correct"]) / n
        for i, k in enumerate(classes):
            pos, sel, tp = int(r[f"pos{i}"]), int(r[f"sel{i}"]), int(r[f"tp{i}"])
            rates = {
                "base_rate": pos / n,
                "selection_rate": sel / n,
                "tpr": _ratio(tp, pos),
                "fpr": _ratio(sel - tp, n - pos),
            }
            for name, value in rates.items():
                if name in metrics:
                    values[f"{name}{CLASS}{k:g}"] = value
        found[(r[_GROUPING], display(r[_GROUP]))] = (n, values)
    return found


def _regression(rows: DataFrame, metrics: Sequence[str]) -> Found:
    y, p = F.col("y"), F.col("p")
    counts = rows.groupBy(_GROUPING, _GROUP).agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(y).alias("mean_label"),
        F.var_pop(y).alias("variance"),
        F.avg(p).alias("mean_prediction"),
        F.avg(F.abs(p - y)).alias("mae"),
        F.avg((p - y) * (p - y)).alias("mse"),
        F.avg(p - y).alias("mean_error"),
    )
    found: Found = {}
    for r in counts.collect():
        mse, variance = float(r["mse"]), float(r["variance"])
        values: dict[str, float | None] = {
            "mean_label": float(r["mean_label"]),
            "mean_prediction": float(r["mean_prediction"]),
            "mae": float(r["mae"]),
            "rmse": math.sqrt(mse),
            "mean_error": float(r["mean_error"]),
            "r2": 1 - mse / variance if variance > 0 else None,
        }
        found[(r[_GROUPING], display(r[_GROUP]))] = (int(r["n"]), {m: values[m] for m in metrics})
    return found
