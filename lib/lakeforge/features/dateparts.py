"""`DateParts`: calendar parts of a date or timestamp column as integer columns.

A real Spark ML Transformer (declared Params, keyword-only constructor,
DefaultParamsReadable/Writable), so it saves and loads inside the fitted
PipelineModel like a built-in stage and scoring applies exactly the training
transform.
"""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

_PARTS = {
    "year": F.year,
    "month": F.month,
    "day": F.dayofmonth,
    "dayofweek": F.dayofweek,
    "dayofyear": F.dayofyear,
    "weekofyear": F.weekofyear,
    "hour": F.hour,
    "minute": F.minute,
}


class DateParts(
    Transformer, HasInputCol, DefaultParamsReadable["DateParts"], DefaultParamsWritable
):
    """Adds `<inputCol>_<part>` for each of `parts` (null where the input is null)."""

    parts: Param[list[str]] = Param(
        Params._dummy(),
        "parts",
        f"calendar parts to extract, of: {', '.join(_PARTS)}",
        typeConverter=TypeConverters.toListString,
    )

    @keyword_only
    def __init__(self, *, inputCol: str | None = None, parts: list[str] | None = None) -> None:
        super().__init__()
        self._setDefault(parts=["dayofweek"])
        kwargs: dict[str, Any] = self._input_kwargs  # type: ignore[attr-defined]  # set by @keyword_only
        self.setParams(**kwargs)

    @keyword_only
    def setParams(
        self, *, inputCol: str | None = None, parts: list[str] | None = None
    ) -> DateParts:
        kwargs: dict[str, Any] = self._input_kwargs  # type: ignore[attr-defined]  # set by @keyword_only
        return self._set(**kwargs)

    def setInputCol(self, value: str) -> DateParts:
        return self._set(inputCol=value)

    def getParts(self) -> list[str]:
        return self.getOrDefault(self.parts)

    def setParts(self, value: list[str]) -> DateParts:
        return self._set(parts=value)

    def outputCols(self) -> list[str]:
        return [f"{self.getInputCol()}_{p}" for p in self.getParts()]

    def _transform(self, dataset: DataFrame) -> DataFrame:
        unknown = [p for p in self.getParts() if p not in _PARTS]
        if unknown:
            raise ValueError(f"DateParts: unknown part(s) {unknown}; use {', '.join(_PARTS)}")
        source: Column = F.col(self.getInputCol())
        columns = {
            out: _PARTS[part](source).cast("int")
            for out, part in zip(self.outputCols(), self.getParts(), strict=True)
        }
        return dataset.withColumns(columns)
