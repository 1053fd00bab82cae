"""The JDBC source config and the SQL lakeforge builds from it: refused before
Spark starts when it is ambiguous or carries credentials, and watermark values
only ever enter SQL as checked literals."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lakeforge.config.models import Column, JdbcSource, Source
from lakeforge.ingest import jdbc

COLUMNS = [{"name": "id", "type": "int"}, {"name": "updated_at", "type": "timestamp"}]
BASE: dict[str, Any] = {
    "url": "jdbc:postgresql://db:5432/shop",
    "table": "orders",
    "user_env": "DB_USER",
    "password_env": "DB_PASSWORD",
}


def _source(**jdbc_changes: Any) -> Source:
    return Source.model_validate(
        {"format": "jdbc", "jdbc": {**BASE, **jdbc_changes}, "columns": COLUMNS}
    )


def test_a_valid_source() -> None:
    src = _source(watermark="updated_at", partition={"column": "id"}).jdbc
    assert src is not None and src.partition is not None
    assert src.partition.num_partitions == 4
    assert jdbc.label(src) == "jdbc:postgresql://db:5432/shop#orders"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"query": "SELECT 1"}, "exactly one of table and query"),
        ({"url": "jdbc:postgresql://db/shop?user=a&password=b"}, "url holds credentials"),
        ({"password_env": "not a name"}, "password_env must be an environment variable name"),
        ({"watermark": "changed_at"}, "jdbc.watermark 'changed_at' is not a declared column"),
        (
            {"partition": {"column": "id"}, "predicates": ["id < 5"]},
            "partition and predicates",
        ),
        ({"url": "postgresql://db/shop"}, "url"),
    ],
)
def test_bad_sources_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _source(**changes)


def test_jdbc_section_and_format_go_together() -> None:
    with pytest.raises(ValidationError, match="format jdbc needs a jdbc section"):
        Source.model_validate({"format": "jdbc", "columns": COLUMNS})
    with pytest.raises(ValidationError, match="only for format jdbc"):
        Source.model_validate({"format": "csv", "path": "x.csv", "jdbc": BASE, "columns": COLUMNS})
    with pytest.raises(ValidationError, match="format csv needs a path"):
        Source.model_validate({"format": "csv", "columns": COLUMNS})


def test_watermark_window_and_literals() -> None:
    src = JdbcSource.model_validate({**BASE, "watermark": "updated_at"})
    stamp = Column(name="updated_at", type="timestamp")
    assert jdbc.window(src, None, None, stamp) == "1 = 1"
    assert jdbc.window(src, "2026-01-01 00:00:00", "2026-01-02 10:00:00.5", stamp) == (
        "updated_at > TIMESTAMP '2026-01-01 00:00:00' "
        "AND updated_at <= TIMESTAMP '2026-01-02 10:00:00.5'"
    )
    number = Column(name="id", type="long")
    assert jdbc.literal("42", number) == "42"
    with pytest.raises(ValueError):
        jdbc.literal("1; DROP TABLE orders", number)
    with pytest.raises(ValueError):
        jdbc.literal("2026-01-01' OR '1'='1", stamp)


def test_missing_credentials_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_USER", "shop")
    monkeypatch.delenv("DB_PASSWORD", raising=False)
    src = JdbcSource.model_validate(BASE)
    with pytest.raises(Exception, match="DB_PASSWORD not set"):
        jdbc.credentials(src)
