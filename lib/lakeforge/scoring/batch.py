"""Scored rows as the gold predictions table holds them: the keys, the
prediction, class probabilities and the lineage that says which model scored
which source rows when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

PARTITION = "_batch_date"


@dataclass(frozen=True)
class Lineage:
    model_name: str
    model_version: str
    run_id: str
    source_table: str
    source_version: int
    batch_id: str
    scored_at: datetime


def score(
    model: PipelineModel, rows: DataFrame, keys: Sequence[str], lineage: Lineage
) -> DataFrame:
    """`rows` scored by `model`, narrowed to keys + prediction (+ probability as
    an array of doubles) + lineage columns, partitioned by the scoring date."""
    scored = model.transform(rows)
    outputs = [F.col("prediction").alias("prediction")]
    if "probability" in scored.columns:
        outputs.append(vector_to_array(F.col("probability")).alias("probability"))
    return scored.select(
        *keys,
        *outputs,
        F.lit(lineage.model_name).alias("_model_name"),
        F.lit(lineage.model_version).alias("_model_version"),
        F.lit(lineage.run_id).alias("_run_id"),
        F.lit(lineage.source_table).alias("_source_table"),
        F.lit(lineage.source_version).cast("long").alias("_source_version"),
        F.lit(lineage.batch_id).alias("_batch_id"),
        F.lit(lineage.scored_at).alias("_scored_at"),
        F.lit(lineage.scored_at.date()).alias(PARTITION),
    )
