"""Typed config: what a YAML file may say, checked before Spark starts.

Every model forbids unknown keys, so a typo fails at load time with its key
path. Defaults live here and nowhere else: with no config file at all, Spark
runs `local[*]`, tables live under `./lakehouse` and MLflow tracks to
`sqlite:///mlruns.db` (the embedded default of the design).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from lakeforge.config.base import Model
from lakeforge.config.cleaning import CleanSteps, Rule
from lakeforge.config.privacy import Privacy
from lakeforge.config.scoring import MonitorConfig, PredictConfig
from lakeforge.config.training import TrainConfig

# Column types a dataset schema may name; `decimal(p,s)` is checked by regex.
SIMPLE_TYPES = (
    "string",
    "int",
    "long",
    "short",
    "byte",
    "double",
    "float",
    "boolean",
    "date",
    "timestamp",
)
_DECIMAL = re.compile(r"^decimal\((\d{1,2}),\s*(\d{1,2})\)$")
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Lineage and quarantine columns lakeforge adds; a source column may not use them.
RESERVED_COLUMNS = ("_batch_id", "_source_file", "_ingested_at", "_raw", "_reason", "_row_id")
# The identity clean gives each row of a dataset without keys (see `identity`).
ROW_ID = "_row_id"


class SparkSettings(Model):
    master: str = "local[*]"
    app_name: str = "lakeforge"
    # Extra Spark settings (`spark.sql.shuffle.partitions: 8`); a session started
    # by spark-submit keeps what spark-submit set.
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # On a standalone cluster (spark://), how long to wait for the first executor
    # before failing with a clear error instead of Spark's endless
    # "Initial job has not accepted any resources". 0 turns the check off.
    executor_wait_seconds: Annotated[int, Field(ge=0)] = 120


class MlflowSettings(Model):
    tracking_uri: str = "sqlite:///mlruns.db"


class Settings(Model):
    """Where things run and live: conf/base.yaml plus an environment overlay."""

    lakehouse: str = "./lakehouse"
    # A dataset's source.path must lie inside the lakehouse (a relative path is
    # read from there; `..` may not leave it) or be a `pkg://` file, unless
    # this is true: then any absolute path or URI (s3a://, abfss://, gs://) is
    # read. Off by default so that a dataset config cannot make a job read
    # arbitrary files of the machine it runs on.
    allow_external_paths: bool = False
    log_level: Literal["ERROR", "WARNING", "INFO", "DEBUG"] = "INFO"
    # functions beyond Spark's built-in ones that config SQL may call (a UDF
    # the session registers, `catalog.schema.fn`); see lakeforge.sqlguard
    sql_functions: list[str] = Field(default_factory=list)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)


class Column(Model):
    name: str
    type: str
    # Pattern for date/timestamp columns parsed from text (Spark datetime pattern).
    format: str | None = None
    # CSV: the column's name in the file's header when it is not an identifier
    # ("Sample Number"); bronze and everything after it use `name`.
    header: str | None = None

    @property
    def in_file(self) -> str:
        """The name the file's header gives this column."""
        return self.header or self.name

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not _COLUMN_NAME.match(value):
            raise ValueError(f"column name {value!r} must be a letter or _ then letters, digits, _")
        if value in RESERVED_COLUMNS:
            raise ValueError(f"column name {value!r} is reserved for lakeforge lineage")
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if value in SIMPLE_TYPES:
            return value
        match = _DECIMAL.match(value)
        if match and int(match.group(2)) <= int(match.group(1)) <= 38:
            return value
        raise ValueError(
            f"unknown type {value!r}; use one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)"
        )

    @model_validator(mode="after")
    def _format_only_for_dates(self) -> Column:
        if self.format is not None and self.type not in ("date", "timestamp"):
            raise ValueError(f"format is only for date/timestamp columns, not {self.type}")
        return self


class CsvOptions(Model):
    header: bool = True
    delimiter: str = ","
    quote: str = '"'
    escape: str = '"'
    # Text values read as null. Spark takes one marker; lakeforge applies the
    # rest itself, so "NA", "" and "-" can all mean missing.
    null_values: list[str] = Field(default_factory=lambda: [""])
    encoding: str = "UTF-8"

    @field_validator("delimiter", "quote", "escape")
    @classmethod
    def _single_character(cls, value: str) -> str:
        if len(value) != 1 and value != "\\t":
            raise ValueError(f"must be one character, got {value!r}")
        return "\t" if value == "\\t" else value

    @model_validator(mode="after")
    def _markers_do_not_hold_delimiter(self) -> CsvOptions:
        bad = [m for m in self.null_values if self.delimiter in m or self.quote in m]
        if bad:
            raise ValueError(
                f"null_values {bad} contain the delimiter or quote character and can never match"
            )
        return self


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_IN_URL = re.compile(r"(password|passwd|pwd|user)=", re.IGNORECASE)


class JdbcPartitioning(Model):
    """Parallel read: `num_partitions` ranges of a numeric/date/timestamp column.
    Bounds not given are taken from the rows to read (one min/max query)."""

    column: str
    num_partitions: Annotated[int, Field(ge=1, le=512)] = 4
    lower: int | None = None
    upper: int | None = None


class JdbcSource(Model):
    """A table or query of a database read over JDBC."""

    # jdbc:postgresql://host:5432/db; never with credentials in it
    url: Annotated[str, Field(pattern=r"^jdbc:[a-z0-9]+:")]
    table: str | None = None
    query: str | None = None
    driver: str = "org.postgresql.Driver"
    # Names of the environment variables that hold the credentials (never the values).
    user_env: str
    password_env: str
    fetch_size: Annotated[int, Field(ge=1)] = 10_000
    partition: JdbcPartitioning | None = None
    # Or: one WHERE condition per partition, e.g. ["region = 'EU'", "region <> 'EU'"]
    predicates: list[str] = Field(default_factory=list)
    # Incremental loads: an increasing column (updated_at, or an id); each run
    # reads rows past the last stored value, up to the maximum seen at planning.
    watermark: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> JdbcSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table and query")
        if self.partition is not None and self.predicates:
            raise ValueError("partition and predicates are two ways to split a read: pick one")
        if _SECRET_IN_URL.search(self.url):
            raise ValueError(
                "url holds credentials: put them in environment variables named by "
                "user_env / password_env"
            )
        for key in ("user_env", "password_env"):
            if not _ENV_NAME.match(getattr(self, key)):
                raise ValueError(f"{key} must be an environment variable name")
        return self


class Source(Model):
    format: Literal["csv", "json", "parquet", "jdbc"]
    # A file, a folder or a glob; `pkg://PACKAGE/path` names a file shipped in
    # an installed Python package (the demo data). `--input` overrides it.
    path: str | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)
    jdbc: JdbcSource | None = None
    columns: Annotated[list[Column], Field(min_length=1)]
    # A file whose columns differ from `columns`: `reject` fails the batch
    # naming the file and column; `evolve` adds a new column to bronze (text
    # for CSV, its own type for Parquet) so nothing in the file is lost. A
    # declared column missing from a file, or of another type, is rejected
    # either way: it would otherwise become nulls.
    schema_drift: Literal["reject", "evolve"] = "reject"
    # A text row longer than this (characters) is quarantined with a reason
    # instead of landing in bronze (a runaway line, a missing newline).
    max_row_chars: Annotated[int, Field(ge=1)] = 1_000_000

    @model_validator(mode="after")
    def _unique_columns(self) -> Source:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate column names: {', '.join(dupes)}")
        renamed = [c.name for c in self.columns if c.header is not None]
        if renamed and self.format != "csv":
            raise ValueError(
                f"columns {', '.join(renamed)}: header names a CSV header's column; "
                f"a {self.format} source has none"
            )
        if self.format == "jdbc":
            if self.jdbc is None:
                raise ValueError("format jdbc needs a jdbc section (url, table or query, ...)")
            if self.jdbc.watermark is not None and self.jdbc.watermark not in names:
                raise ValueError(f"jdbc.watermark {self.jdbc.watermark!r} is not a declared column")
        elif self.path is None:
            raise ValueError(f"format {self.format} needs a path")
        elif self.jdbc is not None:
            raise ValueError(f"a jdbc section is only for format jdbc, not {self.format}")
        return self


class DatasetConfig(Model):
    """One dataset: where its raw files are and what they hold."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    description: str = ""
    source: Source
    # The columns that identify a row (used to deduplicate and MERGE downstream).
    # Optional: without keys every row is a distinct observation (identical rows
    # are all kept), silver is appended per bronze batch and each row gets a
    # stable `_row_id` from its lineage.
    keys: list[str] = Field(default_factory=list)
    clean: CleanSteps = Field(default_factory=CleanSteps)
    rules: list[Rule] = Field(default_factory=list)
    train: TrainConfig | None = None
    predict: PredictConfig = Field(default_factory=PredictConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    # personal data: what happens to which columns before bronze is written
    privacy: Privacy = Field(default_factory=Privacy)

    @model_validator(mode="after")
    def _privacy_names_columns(self) -> DatasetConfig:
        types = {c.name: c.type for c in self.source.columns}
        for col, protection in self.privacy.columns.items():
            if col not in types:
                raise ValueError(f"privacy.columns names unknown column {col!r}")
            kind = types[col]
            numeric = kind in ("int", "long", "float", "double") or kind.startswith("decimal")
            if protection.band is not None and not numeric:
                problem = "band is for numeric columns"
            elif protection.to is not None and kind not in ("date", "timestamp"):
                problem = "to is for date and timestamp columns"
            elif protection.prefix is not None and kind != "string":
                problem = "prefix is for string columns"
            else:
                continue
            raise ValueError(f"privacy.columns.{col}: {problem}, and {col} is {kind}")
        dropped = set(self.privacy.dropped)
        for col in self.keys:
            if col in dropped:
                raise ValueError(f"privacy drops {col!r}, a key: pseudonymise it instead")
            action = self.privacy.columns[col].action if col in self.privacy.columns else None
            if action not in (None, "pseudonymise"):
                # a mask or a band gives different people one value: dedupe would merge them
                raise ValueError(
                    f"privacy.columns.{col}: {col} is a key, and {action} would give "
                    "different rows one key; pseudonymise it instead"
                )
        # a pseudonym or a mask is opaque text: normalising it, or reading it as
        # a number, does nothing useful (and the cast would fail)
        opaque = set(self.privacy.as_text)
        for section in ("upper", "lower", "replace", "parse"):
            for col in getattr(self.clean, section):
                if col in opaque:
                    raise ValueError(
                        f"clean.{section} names {col!r}, which privacy "
                        f"{self.privacy.columns[col].action}s before clean runs: "
                        "its value is no longer the text to normalise"
                    )
        features = self.train.features.numeric if self.train is not None else None
        for col in features.columns if features is not None else []:
            if col in opaque:
                raise ValueError(
                    f"train.features.numeric names {col!r}, which privacy "
                    f"{self.privacy.columns[col].action}s into text"
                )
        mark = self.source.jdbc.watermark if self.source.jdbc is not None else None
        if mark is not None and mark in self.privacy.columns:
            raise ValueError(
                f"privacy.columns.{mark}: the jdbc watermark's raw values are kept in the "
                "ingest log to plan the next window; choose another watermark column"
            )
        return self

    @model_validator(mode="after")
    def _keys_are_columns(self) -> DatasetConfig:
        # a dropped column never reaches bronze: nothing downstream may use it
        names = {c.name for c in self.source.columns} - set(self.privacy.dropped)
        unknown = [k for k in self.keys if k not in names]
        if unknown:
            raise ValueError(f"keys name unknown columns: {', '.join(unknown)}")
        known = names | set(self.clean.derive)
        for i, rule in enumerate(self.rules):
            for col in [rule.column, *rule.columns]:
                if col is not None and col not in known:
                    raise ValueError(f"rules.{i} ({rule.name}) names unknown column {col!r}")
        names_seen = [r.name for r in self.rules]
        dupes = sorted({n for n in names_seen if names_seen.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        for section in ("upper", "lower"):
            for col in getattr(self.clean, section):
                if col not in known:
                    raise ValueError(f"clean.{section} names unknown column {col!r}")
        for col in [*self.clean.replace, *self.clean.parse]:
            if col not in names:
                raise ValueError(f"clean names unknown column {col!r}")
        if self.train is not None:
            wanted = [self.train.label, *self.train.features.input_columns()]
            if (
                self.train.split.column
                and self.train.split.column not in self.train.features.derive
            ):
                wanted.append(self.train.split.column)
            for col in wanted:
                if col not in known:
                    raise ValueError(f"train names unknown column {col!r}")
            for col in self.train.fairness.groups if self.train.fairness else []:
                if col not in known and col not in self.train.features.derive:
                    raise ValueError(f"train.fairness.groups names unknown column {col!r}")
        jdbc = self.source.jdbc
        if not self.keys and jdbc is not None and jdbc.watermark is None:
            raise ValueError(
                "a database source without keys needs source.jdbc.watermark: without one "
                "every run reads a full snapshot, and with no keys to merge on silver "
                "would hold every row once per run"
            )
        for i, rule in enumerate(self.rules):
            if rule.type == "unique" and not (rule.columns or rule.column or self.keys):
                raise ValueError(
                    f"rules.{i} ({rule.name}): a unique rule without columns checks the "
                    "dataset keys, and this dataset has none: name its columns"
                )
        return self

    @property
    def identity(self) -> list[str]:
        """The columns that identify a row from silver on: the keys, or `_row_id`."""
        return list(self.keys) or [ROW_ID]
