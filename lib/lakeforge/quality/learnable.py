"""Can these training rows teach the configured model anything?

Checked on the train split before any model is fitted, so that what the
engine cannot learn is said in one line naming the cause and the key to
change, instead of surfacing as a failed fit deep in the search (a fold with
no row of a class, a vector of nothing but nulls).
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakeforge.config.training import TrainConfig
from lakeforge.errors import NotLearnable

log = logging.getLogger(__name__)

_COLUMNS_PER_PASS = 64


def check_label(counts: dict[float, int], spec: TrainConfig, name: str) -> None:
    """Classification: at least two classes, each with a row in every fold.

    `counts` is the train split's rows per label value. Raises NotLearnable."""
    if spec.task == "regression":
        return
    if len(counts) < 2:
        shown = ", ".join(f"{v:g}" for v in counts) or "none"
        raise NotLearnable(
            f"{name}: train.label {spec.label!r} has one value ({shown}) in the train split: "
            "nothing to tell apart; check train.where and how the label is derived"
        )
    folds = spec.split.folds
    short = {c: n for c, n in sorted(counts.items()) if n < folds}
    if short:
        shown = ", ".join(f"class {c:g} has {n} row(s)" for c, n in short.items())
        raise NotLearnable(
            f"{name}: train.label {spec.label!r}: {shown} in the train split, fewer than "
            f"train.split.folds ({folds}): every fold needs each class; lower "
            "train.split.folds, merge the class into another (clean.derive) or add rows"
        )


def check_features(train: DataFrame, spec: TrainConfig, name: str) -> None:
    """Every named feature column holds a value somewhere, and at least one of
    them varies (the label too, for regression); one pass over `train`.

    Raises NotLearnable naming the column and the key that lists it; logs a
    warning for a constant column (it cannot help, but does no harm)."""
    keys = _feature_keys(spec)
    columns = list(keys)
    if spec.task == "regression":
        columns.append(spec.label)
    if not columns:
        return
    # count, min and max: a column varies when min < max (cheap on wide data,
    # where a distinct count per column costs minutes)
    present: dict[str, int] = {}
    varies: dict[str, bool] = {}
    # a group of columns per pass: one aggregation of thousands of expressions
    # is slower to plan and compile than a few small ones (wide files)
    for start in range(0, len(columns), _COLUMNS_PER_PASS):
        group = columns[start : start + _COLUMNS_PER_PASS]
        row = train.agg(
            *[F.count(F.col(f"`{c}`")).alias(f"n{i}") for i, c in enumerate(group)],
            *[F.min(F.col(f"`{c}`")).alias(f"lo{i}") for i, c in enumerate(group)],
            *[F.max(F.col(f"`{c}`")).alias(f"hi{i}") for i, c in enumerate(group)],
        ).first()
        assert row is not None
        present.update({c: int(row[f"n{i}"]) for i, c in enumerate(group)})
        varies.update({c: row[f"lo{i}"] != row[f"hi{i}"] for i, c in enumerate(group)})
    if spec.task == "regression" and not varies[spec.label]:
        raise NotLearnable(
            f"{name}: train.label {spec.label!r} has one value in the train split: "
            "nothing to learn; check train.where and how the label is derived"
        )
    empty = [c for c in keys if present[c] == 0]
    if empty:
        shown = ", ".join(f"{c!r} ({keys[c]})" for c in empty)
        raise NotLearnable(
            f"{name}: feature column(s) {shown} are null in every train row: "
            "remove them from the feature list or fix how they are read"
        )
    constant = [c for c in keys if not varies[c]]
    if len(constant) == len(keys) and not spec.features.derive:
        raise NotLearnable(
            f"{name}: no usable feature: every feature column ({', '.join(constant)}) has a "
            "single value in the train split; name columns that vary in train.features"
        )
    if constant:
        log.warning(
            "train: feature column(s) %s have a single value in the train split and cannot help",
            ", ".join(constant),
        )


def _feature_keys(spec: TrainConfig) -> dict[str, str]:
    """Each silver column the features read, with the config key that names it."""
    f = spec.features
    keys: dict[str, str] = {}
    for c in f.numeric.columns if f.numeric else []:
        keys.setdefault(c, "train.features.numeric.columns")
    for c in f.categorical.columns if f.categorical else []:
        keys.setdefault(c, "train.features.categorical.columns")
    for b in f.buckets:
        keys.setdefault(b.column, "train.features.buckets")
    for d in f.dates:
        keys.setdefault(d.column, "train.features.dates")
    return {c: k for c, k in keys.items() if c not in f.derive}
