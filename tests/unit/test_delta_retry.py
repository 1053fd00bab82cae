"""Which failures a Delta write retries: Delta's typed commit conflicts and a
table another writer created meanwhile, never an error that merely mentions
one in its text."""

from __future__ import annotations

from pathlib import Path

import delta.exceptions as delta_errors
import pytest
from pyspark.sql import SparkSession

from lakeforge.storage import delta


def _flaky(first: BaseException) -> tuple[list[int], object]:
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise first
        return "done"

    return calls, action


def test_a_typed_conflict_is_retried() -> None:
    calls, action = _flaky(delta_errors.ConcurrentAppendException(message="files added"))
    assert delta.with_retry(action, what="t") == "done"  # type: ignore[arg-type]
    assert len(calls) == 2


def test_a_table_created_meanwhile_is_retried(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    spark.range(1).write.format("delta").save(path)
    try:  # the real error a second creator gets
        spark.range(1).write.format("delta").mode("errorifexists").save(path)
    except Exception as exc:
        created: BaseException = exc
    assert delta.is_conflict(created)
    calls, action = _flaky(created)
    assert delta.with_retry(action, what="t") == "done"  # type: ignore[arg-type]
    assert len(calls) == 2


def test_an_error_naming_a_conflict_in_its_text_is_not_retried() -> None:
    calls, action = _flaky(ValueError("column note: 'ConcurrentAppendException' is a bad value"))
    with pytest.raises(ValueError):
        delta.with_retry(action, what="t")  # type: ignore[arg-type]
    assert len(calls) == 1
