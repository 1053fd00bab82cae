"""A sample of a raw file: its first rows as text, and what the file says about itself.

`lakeforge.starter.read` reads one; everything after it (profile, plan,
render) is a pure function of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

SAMPLE_ROWS = 10_000
Format = Literal["csv", "json", "parquet"]

COMPRESSED = (".gz", ".bz2", ".xz", ".zip")
BY_SUFFIX: dict[str, Format] = {
    **dict.fromkeys((".csv", ".tsv", ".tab", ".txt", ".dat", ".psv"), "csv"),
    **dict.fromkeys((".json", ".jsonl", ".ndjson"), "json"),
    **dict.fromkeys((".parquet", ".pq"), "parquet"),
}
# what a data file's name ends with (a dataset is named after the rest)
DATA_SUFFIXES = frozenset({*COMPRESSED, *BY_SUFFIX})


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    quote: str
    header: bool


@dataclass(frozen=True)
class Sample:
    """The first rows of one file, every value as text (None: no value)."""

    format: Format
    # the file's column names (col_1.. for a CSV without a header)
    headers: tuple[str, ...]
    rows: tuple[tuple[str | None, ...], ...]
    # every row of the file was read
    whole_file: bool
    csv: CsvDialect | None = None
    encoding: str = "UTF-8"
    # header -> the column type the file itself fixes (Parquet; nested JSON is text)
    types: Mapping[str, str] = field(default_factory=dict)
    # header -> a file type no schema type holds (Parquet lists, structs, binary)
    unsupported: Mapping[str, str] = field(default_factory=dict)
    # what a person should know about the file as a whole
    review: tuple[str, ...] = ()
