"""The first rows of a Parquet file (pyarrow, imported only when one is read)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from lakeforge.errors import InputNotFound, UnreadableInput
from lakeforge.starter.sample import Sample


def read_parquet(source: Path | BinaryIO, shown: str, limit: int) -> Sample:
    """The first `limit` rows of a Parquet file, with the schema type of each
    column. Raises UnreadableInput (not Parquet) or InputNotFound (no rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
        total = parquet.metadata.num_rows
        batches = []
        taken = 0
        for batch in parquet.iter_batches(batch_size=min(limit, 65_536)):
            batches.append(batch)
            taken += batch.num_rows
            if taken >= limit:
                break
        table = pa.Table.from_batches(batches, schema=parquet.schema_arrow).slice(0, limit)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UnreadableInput(f"{shown}: cannot be read as Parquet: {exc}") from exc
    if total == 0:
        raise InputNotFound(f"{shown}: the Parquet file holds no rows: nothing to profile")
    types: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    review: list[str] = []
    for fld in table.schema:
        kind = parquet_type(fld.type)
        if kind is None:
            unsupported[fld.name] = str(fld.type)
        else:
            types[fld.name] = kind
        if pa.types.is_timestamp(fld.type) and fld.type.tz is None:
            review.append(
                f"{fld.name}: a timestamp without a time zone, which Spark may read as "
                "timestamp_ntz: check that ingest accepts it"
            )
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    rows = tuple(tuple(_parquet_text(v) for v in row) for row in zip(*columns, strict=True))
    return Sample(
        format="parquet",
        headers=tuple(table.schema.names),
        rows=rows,
        whole_file=total <= limit,
        types=types,
        unsupported=unsupported,
        review=tuple(review),
    )


def parquet_type(arrow: Any) -> str | None:
    """The schema type that holds a Parquet (Arrow) column as Spark reads it, or None."""
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow):
        return parquet_type(arrow.value_type)
    if t.is_boolean(arrow):
        return "boolean"
    # Spark widens unsigned types: uint8 -> short, uint16 -> int, uint32 -> long
    if t.is_int8(arrow) or t.is_int16(arrow) or t.is_int32(arrow):
        return "int"
    if t.is_uint8(arrow) or t.is_uint16(arrow):
        return "int"
    if t.is_int64(arrow) or t.is_uint32(arrow):
        return "long"
    if t.is_uint64(arrow):
        return "decimal(20,0)"
    if t.is_float32(arrow) or t.is_float64(arrow):
        return "double"
    if t.is_string(arrow) or t.is_large_string(arrow):
        return "string"
    if t.is_date(arrow):
        return "date"
    if t.is_timestamp(arrow):
        return "timestamp"
    if t.is_decimal(arrow) and arrow.precision <= 38:
        return f"decimal({arrow.precision},{arrow.scale})"
    return None


def _parquet_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value) if isinstance(value, str | int | Decimal) else None
