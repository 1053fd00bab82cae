"""Reading raw files with the declared schema, and telling good rows from bad.

Text formats (CSV, JSON lines) are read with every column as a string plus a
corrupt-record column, then cast column by column with `try_*` casts. A row is
bad when the reader could not split it (wrong field count, broken JSON) or a
non-null value does not cast to its declared type; its `_reason` says which
column and value, and `_raw` keeps the original text. This gives one reason
per row instead of Spark's bare "malformed", and lets several null markers
("NA", "-") mean missing. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from urllib.parse import quote

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config.models import Column, Source
from lakeforge.errors import SchemaMismatch
from lakeforge.ingest.files import InputFile
from lakeforge.privacy.protect import WITHHELD, Protector
from lakeforge.sqltext import name as _name
from lakeforge.sqltext import select as _select
from lakeforge.sqltext import text as _text

RAW = "_raw"
REASON = "_reason"
SOURCE_FILE = "_source_file"

_SIMPLE: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "short": T.ShortType(),
    "byte": T.ByteType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}
# Parquet types accepted for a declared type (lossless widening only).
_WIDENS: dict[str, tuple[str, ...]] = {
    "long": ("int", "short", "byte"),
    "int": ("short", "byte"),
    "short": ("byte",),
    "double": ("float", "int", "short", "byte"),
}


def spark_type(name: str) -> T.DataType:
    """The Spark type for a config type name (`int`, `decimal(10,2)`, …)."""
    if name in _SIMPLE:
        return _SIMPLE[name]
    precision, scale = name[len("decimal(") : -1].split(",")
    return T.DecimalType(int(precision), int(scale))


def target_schema(columns: Sequence[Column]) -> T.StructType:
    return T.StructType([T.StructField(c.name, spark_type(c.type), True) for c in columns])


def _text_schema(names: Sequence[str]) -> T.StructType:
    fields = [T.StructField(n, T.StringType(), True) for n in names]
    return T.StructType([*fields, T.StructField(RAW, T.StringType(), True)])


def _source_file_column(files: Sequence[InputFile]) -> SparkColumn:
    """Map the path Spark read back to the file's identity (zip members included)."""
    pairs: list[SparkColumn] = []
    for f in files:
        for key in {
            f.readable,
            quote(f.readable, safe="/:"),
            f.readable.replace("file:/", "file:///", 1),
        }:
            pairs += [F.lit(key), F.lit(f.path)]
    mapping = F.create_map(*pairs)
    actual = F.col("_metadata.file_path")
    return F.coalesce(mapping[actual], actual)


def read_text_rows(
    spark: SparkSession,
    source: Source,
    files: Sequence[InputFile],
    headers: Mapping[str, Sequence[str]] | None = None,
) -> DataFrame:
    """Every row of CSV/JSON files as strings, with `_raw` set when the reader failed.

    `headers` (file path → its CSV header) is given under `schema_drift:
    evolve`: files are then read by their own header, in groups of equal
    headers, and the columns the schema does not name are kept (as text) after
    the declared ones; a file without such a column has nulls there.
    """
    declared = [c.name for c in source.columns]
    # Spark checks the header against these names; columns are then renamed
    # to the declared names (a CSV header may say "Sample Number").
    in_file = [c.in_file for c in source.columns]
    renamed = {f: n for f, n in zip(in_file, declared, strict=True) if f != n}
    if source.format == "csv" and source.csv.header and len(set(in_file)) < len(in_file):
        # A header naming a column twice (`decile_score` in COMPAS) cannot be
        # matched by name: each header was compared with the declared list,
        # position by position, before this read (files.check_csv_header), so
        # the columns are taken by position under their declared names.
        return _read_text(spark, source, files, declared, by_position=True)
    if source.format != "csv" or not headers:
        return _renamed(_read_text(spark, source, files, in_file), renamed)
    groups: dict[tuple[str, ...], list[InputFile]] = {}
    for f in files:
        groups.setdefault(tuple(headers.get(f.path) or in_file), []).append(f)
    extras = list(dict.fromkeys(c for h in groups for c in h if c not in in_file))
    frames = [
        _renamed(_read_text(spark, source, group, list(header)), renamed).select(
            *declared, *[c for c in extras if c in header], RAW, SOURCE_FILE
        )
        for header, group in groups.items()
    ]
    out = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)
    return out.select(*declared, *extras, RAW, SOURCE_FILE)


def _renamed(df: DataFrame, renamed: Mapping[str, str]) -> DataFrame:
    """`df` with columns renamed; names are quoted, since a header may hold a
    dot (`decile_score.1`), which `withColumnsRenamed` would read as a field
    of a struct."""
    if not renamed:
        return df
    return _select(df, *[f"{_name(c)} AS {_name(renamed.get(c, c))}" for c in df.columns])


def _read_text(
    spark: SparkSession,
    source: Source,
    files: Sequence[InputFile],
    names: Sequence[str],
    by_position: bool = False,
) -> DataFrame:
    readables = [f.readable for f in files]
    reader = (
        spark.read.schema(_text_schema(names))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", RAW)
    )
    if source.format == "csv":
        opts = source.csv
        df = (
            reader.option("header", opts.header)
            # compare the header with the schema instead of trusting positions
            .option("enforceSchema", by_position or not opts.header)
            .option("sep", opts.delimiter)
            .option("quote", opts.quote)
            .option("escape", opts.escape)
            .option("encoding", opts.encoding)
            .csv(readables)
        )
    else:
        df = reader.json(readables)
    return df.withColumn(SOURCE_FILE, _source_file_column(files))


def _cast(column: Column) -> str:
    """The SQL casting `column`'s text to its type: null when it does not cast."""
    value = _name(column.name)
    if column.type == "string":
        return value
    trimmed = f"trim({value})"
    if column.type == "date" and column.format:
        return f"try_to_date({trimmed}, {_text(column.format)})"
    if column.type == "timestamp" and column.format:
        return f"try_to_timestamp({trimmed}, {_text(column.format)})"
    return f"try_cast({trimmed} AS {spark_type(column.type).simpleString()})"


def type_rows(
    rows: DataFrame,
    columns: Sequence[Column],
    null_values: Sequence[str],
    fmt: str,
    max_row_chars: int = 1_000_000,
    encoding: str = "UTF-8",
    protector: Protector | None = None,
) -> DataFrame:
    """Cast text rows to the declared types and add `_reason` (null for good rows).

    Values equal to a null marker (spaces around it ignored) become null
    before casting. A row is bad when it did not split, when a value does not
    cast, when it holds bytes the declared encoding cannot decode (Spark reads
    them as U+FFFD; we refuse to store that silently), or when it is longer
    than `max_row_chars`. Returns the typed columns (null on a row that did
    not split: its fields cannot be told apart), any undeclared (schema
    drift: evolve) text columns, `_source_file`, `_raw` (original text for
    bad rows) and `_reason`.

    With a `protector` whose block protects columns, a bad row must not show
    what a good one would not (the privacy rule of the quarantine):
    - a row that split keeps its fields as JSON, each protected field in its
      protected form (`Protector.raw_field_sql`: the pseudonym or mask a bronze
      row would hold, computed on the text when it does not cast; a
      generalised field that does not cast is `[withheld]`; a dropped field
      is left out);
    - a row that did not split (wrong field count, broken JSON) cannot tell
      where its protected fields are: its text is withheld, keeping its
      length and a keyed digest (`Protector.withheld_sql`);
    - a reason never quotes a value, and a field of an unprotected column
      that does not cast is `[withheld]` in the raw text (the block may have
      missed a personal column).

    The expressions are written as SQL text, one `F.expr` per output column:
    built with the Column API they cost dozens of Py4J round trips per
    column, seconds on a file of a few hundred columns.
    """
    declared = {c.name for c in columns}
    extras = [c for c in rows.columns if c not in declared and c not in (RAW, SOURCE_FILE)]
    texts = [*(c.name for c in columns), *extras]
    # a marker counts with or without the spaces around it (`a, ?, b`), and
    # the empty marker also covers a field of spaces only
    markers = sorted({m.strip() for m in null_values})
    cleaned = rows
    if markers:
        listed = ", ".join(_text(m) for m in markers)
        cleaned = _select(
            rows,
            *[
                f"CASE WHEN trim({_name(c)}) IN ({listed}) THEN NULL ELSE {_name(c)} END"
                f" AS {_name(c)}"
                for c in texts
            ],
            RAW,
            SOURCE_FILE,
        )
    structural = (
        f"row does not split into the {len(columns)} declared fields"
        if fmt == "csv"
        else "not a valid JSON object"
    )
    bad_byte = _text("\ufffd")
    undecodable = [
        f"CASE WHEN contains({_name(c)}, {bad_byte}) THEN "
        f"{_text(f'{c}: holds bytes that are not valid {encoding} (source.csv.encoding)')} END"
        for c in texts
    ]
    private = protector is not None and protector.active
    protected = protector.columns if protector is not None else {}
    failures = [
        f"CASE WHEN {_name(c.name)} IS NOT NULL AND {_cast(c)} IS NULL THEN "
        + (
            _text(f"{c.name}: a value withheld by privacy is not a {c.type}")
            if c.name in protected
            # under a privacy block no value is quoted: a column the block
            # missed may hold personal data all the same
            else f"concat({_text(f'{c.name}: a value of ')}, "
            f"CAST(char_length({_name(c.name)}) AS STRING), "
            f"{_text(f' characters is not a {c.type}')})"
            if private
            else f"concat({_text(f'{c.name}: ')}, substr({_name(c.name)}, 1, 60), "
            f"{_text(f' is not a {c.type}')})"
        )
        + " END"
        for c in columns
    ]
    # the fields plus the delimiters between them: the line's length (a flat
    # sum: a chain of one `+` per column overflows the JVM's stack on files
    # of hundreds of columns)
    lengths = ", ".join(f"coalesce(length({_name(c)}), 0)" for c in texts)
    length = (
        f"coalesce(length({RAW}), "
        f"aggregate(array({lengths}), 0, (total, n) -> total + n) + {len(texts) - 1})"
    )
    too_long = (
        f"CASE WHEN {length} > {max_row_chars} THEN concat('row is ', CAST({length} AS STRING), "
        f"{_text(f' characters long, over source.max_row_chars ({max_row_chars})')}) END"
    )
    undecoded = f"CASE WHEN contains({RAW}, {bad_byte}) THEN {_text(f'not valid {encoding}; ')} END"
    reason = (
        f"coalesce({too_long}, "
        f"CASE WHEN {RAW} IS NOT NULL THEN "
        f"concat(coalesce({undecoded}, ''), {_text(structural)}) END, "
        f"nullif(concat_ws('; ', {', '.join([*undecodable, *failures]) or 'NULL'}), ''))"
    )
    # Keep the text of rows that split but did not cast, so quarantine has it.
    raw = f"coalesce({RAW}, to_json(struct({', '.join(_name(c) for c in texts)})))"
    if protector is not None and protector.active:
        record = _protected_record(columns, texts, protector)
        raw = f"coalesce({protector.withheld_sql(RAW)}, {record})"
    return _select(
        cleaned,
        *[f"CASE WHEN {RAW} IS NULL THEN {_cast(c)} END AS {_name(c.name)}" for c in columns],
        *[_name(c) for c in extras],
        SOURCE_FILE,
        f"CASE WHEN ({reason}) IS NOT NULL THEN {raw} END AS {RAW}",
        f"{reason} AS {REASON}",
    )


def _protected_record(columns: Sequence[Column], texts: Sequence[str], protector: Protector) -> str:
    """SQL for a row's fields as JSON, protected columns in their protected form."""
    by_name = {c.name: c for c in columns}
    fields: list[str] = []
    for field in texts:
        declared = by_name.get(field)
        if declared is None:
            value: str | None = _name(field)
        elif field not in protector.columns:
            value = (
                f"CASE WHEN {_name(field)} IS NOT NULL AND {_cast(declared)} IS NULL "
                f"THEN {_text(WITHHELD)} ELSE {_name(field)} END"
            )
        else:
            value = protector.raw_field_sql(
                field, _name(field), _cast(declared), spark_type(declared.type)
            )
        if value is not None:
            fields += [_text(field), value]
    return f"to_json(named_struct({', '.join(fields)}))" if fields else "'{}'"


def check_types(
    where: str, actual: T.StructType, columns: Sequence[Column], new_columns: str = "ignore"
) -> list[str]:
    """Typed input (Parquet, a database) must hold every declared column with
    its type or a lossless narrower one; raises SchemaMismatch naming `where`
    and the column, instead of casting values into nulls or truncating them.

    Columns the schema does not name: `ignore` (a database table read as a
    projection), `reject` (schema drift refused), `evolve` (returned, to be
    kept in bronze with their own type).
    """
    found = {fld.name: fld.dataType for fld in actual.fields}
    missing = [c.name for c in columns if c.name not in found]
    if missing:
        raise SchemaMismatch(f"{where}: missing column(s) {', '.join(missing)}")
    for c in columns:
        have = found[c.name]
        if have != spark_type(c.type) and have.simpleString() not in _WIDENS.get(c.type, ()):
            raise SchemaMismatch(
                f"{where}: column {c.name} is {have.simpleString()}, schema says {c.type}"
            )
    declared = {c.name for c in columns}
    extra = [f.name for f in actual.fields if f.name not in declared]
    if extra and new_columns == "reject":
        raise SchemaMismatch(
            f"{where}: unexpected column(s) {', '.join(extra)} "
            "(source.schema_drift: evolve would add them to bronze)"
        )
    return extra if new_columns == "evolve" else []


def read_parquet_rows(
    spark: SparkSession, columns: Sequence[Column], files: Sequence[InputFile], drift: str
) -> DataFrame:
    """Parquet files checked against the declared schema (names and types), then
    read with `_raw`/`_reason` left null: Parquet rows are typed already. Under
    `drift == "evolve"` the undeclared columns are kept with their own types.

    Raises SchemaMismatch naming the file and column.
    """
    extras: list[str] = []
    for f in files:
        found = check_types(f.path, spark.read.parquet(f.readable).schema, columns, drift)
        extras += [c for c in found if c not in extras]
    reader = spark.read.option("mergeSchema", "true") if extras else spark.read
    df = reader.parquet(*[f.readable for f in files])
    return df.select(
        *[F.col(c.name).cast(spark_type(c.type)).alias(c.name) for c in columns],
        *extras,
        _source_file_column(files).alias(SOURCE_FILE),
        F.lit(None).cast("string").alias(RAW),
        F.lit(None).cast("string").alias(REASON),
    )


def read_rows(
    spark: SparkSession,
    source: Source,
    files: Sequence[InputFile],
    headers: Mapping[str, Sequence[str]] | None = None,
    protector: Protector | None = None,
) -> DataFrame:
    """All rows of `files`: typed columns (then any kept undeclared ones),
    `_source_file`, `_raw`, `_reason`; the quarantine's raw text and reasons
    written under `protector`'s rule (see `type_rows`). The typed columns
    themselves are not protected here: that is `Protector.apply`'s job, for
    every kind of source."""
    if source.format == "parquet":
        return read_parquet_rows(spark, source.columns, files, source.schema_drift)
    text = read_text_rows(spark, source, files, headers)
    null_values = source.csv.null_values if source.format == "csv" else []
    encoding = source.csv.encoding if source.format == "csv" else "UTF-8"
    return type_rows(
        text,
        source.columns,
        null_values,
        source.format,
        source.max_row_chars,
        encoding,
        protector,
    )
