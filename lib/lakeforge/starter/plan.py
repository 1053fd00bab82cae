"""What to learn from a profiled sample: the label and its task, and the features.

Pure functions on column profiles. Classification needs the label as numbers
0..k-1, so a text label (or numbers that are not 0..k-1) gets a clean
`derive` mapping; a value the sample never showed maps to NULL, and the
`not_null` rule on the label sends such rows to the quarantine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lakeforge.config.training import Task
from lakeforge.errors import ConfigError
from lakeforge.starter.infer import Parse, free_name, identifier
from lakeforge.starter.profile import ColumnProfile

NUMERIC_TYPES = ("int", "long", "short", "byte", "double", "float")
DATE_TYPES = ("date", "timestamp")
MULTICLASS_MAX = 20  # integer labels with more distinct values are a regression
CATEGORICAL_INTS = 10  # integer columns with at most this many values are categories
MAX_CATEGORIES = 100
FEW_ROWS = 20  # a class with fewer sample rows deserves a look
# Label columns found by name when --label is not given.
_LABEL_NAMES = ("label", "target", "class", "y", "outcome")


@dataclass(frozen=True)
class Label:
    column: str  # the source column
    target: str  # train.label: the column itself or the derived one
    task: Task
    why: str  # what the task was guessed from
    # clean.derive SQL making classes 0..k-1, a line per class (joined by spaces)
    derive_lines: tuple[str, ...] = ()
    mapping: str = ""  # how the values map, for a comment
    review: tuple[str, ...] = ()

    @property
    def derive(self) -> str | None:
        return " ".join(self.derive_lines) if self.derive_lines else None


@dataclass(frozen=True)
class Features:
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    dates: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # clean.derive: new column -> SQL, for inputs a feature stage cannot read as they are
    derive: dict[str, str] = field(default_factory=dict)
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.numeric or self.categorical or self.dates)


def find_column(columns: Sequence[ColumnProfile], wanted: str) -> ColumnProfile | None:
    """The column `wanted` names: its file header or its identifier, in any case."""
    for match in (
        lambda c: c.header == wanted or c.name == wanted,
        lambda c: wanted.casefold() in (c.header.casefold(), c.name.casefold()),
        lambda c: c.name == identifier(wanted, 0),
    ):
        for c in columns:
            if match(c):
                return c
    return None


def guess_label_column(columns: Sequence[ColumnProfile]) -> ColumnProfile | None:
    """A column named like a label (`label`, `target`, `class`...), if any."""
    for name in _LABEL_NAMES:
        for c in columns:
            if c.name.lower() == name:
                return c
    return None


def plan_label(column: ColumnProfile, taken: Sequence[str]) -> Label:
    """The task the label's values suggest and, for classification, the
    mapping to 0..k-1. Raises ConfigError for a label nothing can be learnt from."""
    kind, k = column.silver_type, column.distinct
    if kind in DATE_TYPES:
        raise ConfigError(f"--label {column.header}: a {kind} column, not something to predict")
    if k < 2:
        what = "no value" if k == 0 else f"one value ({next(iter(column.counts))!r})"
        raise ConfigError(f"--label {column.header}: {what} in the sample: nothing to learn")
    numbers = _numbers(column) if kind in NUMERIC_TYPES else None
    integral = numbers is not None and all(n.is_integer() for n in numbers)
    many = ""
    if kind == "boolean" or k == 2:
        task: Task = "binary"
    elif numbers is None:
        task = "multiclass"
        many = f"{k} classes is many: is this the column to predict?" if k > MULTICLASS_MAX else ""
    elif integral and k <= MULTICLASS_MAX:
        task = "multiclass"
    else:
        task = "regression"
    why = f"{k:,} distinct {kind} values in the sample"
    if task == "regression":
        return Label(column.name, column.name, task, why, review=tuple(r for r in [many] if r))
    review = tuple(r for r in (many, _rare_class(column)) if r)
    if numbers is not None and integral and sorted(numbers) == [float(i) for i in range(k)]:
        return Label(column.name, column.name, task, f"{why}, already 0..{k - 1}", review=review)
    target = free_name(f"{column.name}_id", taken)
    lines, mapping = _mapping(column, task, numbers)
    return Label(column.name, target, task, why, lines, mapping, review)


def _numbers(column: ColumnProfile) -> list[float]:
    """The distinct values as numbers, in the order of `column.counts`."""
    return [_as_number(v, column.parse) for v in column.counts]


def _as_number(value: str, spec: Parse | None) -> float:
    """A value as a number, a parsed column's written form (`1.234,5`) undone."""
    if spec is not None:
        value = value.replace(spec.group, "") if spec.group else value
        value = value.replace(spec.decimal, ".")
    return float(value)


def _mapping(
    column: ColumnProfile, task: Task, numbers: list[float] | None
) -> tuple[tuple[str, ...], str]:
    """SQL mapping the label's values to 0..k-1 (a line per class), and how it
    orders them."""
    name = f"`{column.name}`"
    if column.silver_type == "boolean":
        return (f"CAST({name} AS INT)",), "true -> 1, false -> 0"
    values = list(column.counts)
    if task == "binary":
        # the rarer value is the class of interest (1); ties alphabetically
        ordered = sorted(values, key=lambda v: (-column.counts[v], v))
        how = "the rarer value -> 1"
    elif numbers is not None:
        ordered = [v for _, v in sorted(zip(numbers, values, strict=True))]
        how = "classes in ascending order"
    else:
        # alphabetical, not by frequency: the numbering stays put as data arrives
        ordered = sorted(values)
        how = "classes in alphabetical order"
    if numbers is not None:
        literals = [_number_literal(_as_number(v, column.parse)) for v in ordered]
    else:
        literals = [string_literal(v) for v in ordered]
    lines = [f"WHEN {name} = {lit} THEN {i}" for i, lit in enumerate(literals)]
    lines[0] = f"CASE {lines[0]}"
    lines[-1] = f"{lines[-1]} END"
    listed = ", ".join(f"{v} -> {i}" for i, v in enumerate(ordered))
    return tuple(lines), f"{how}: {listed}"


def string_literal(value: str) -> str:
    """A Spark SQL string literal: backslash escapes (Spark's default), since
    Spark reads `'a''b'` as two adjacent literals, `ab`."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _number_literal(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def _rare_class(column: ColumnProfile) -> str:
    value, rows = min(column.counts.items(), key=lambda item: (item[1], item[0]))
    largest = max(column.counts.values())
    if rows >= FEW_ROWS and rows * 10 >= largest:
        return ""
    return (
        f"the rarest class ({value!r}) has {rows:,} rows in the sample (the largest "
        f"{largest:,}): the test split and each fold see few of them; more data or "
        "train.class_weight: balanced may help"
    )


def plan_features(
    columns: Sequence[ColumnProfile], label: str | None, taken: Sequence[str]
) -> Features:
    """Numeric, categorical and date features by type and cardinality; the
    rest left out, each with the reason."""
    numeric: list[str] = []
    categorical: list[str] = []
    dates: list[tuple[str, tuple[str, ...]]] = []
    derive: dict[str, str] = {}
    left_out: list[tuple[str, str]] = []
    used = list(taken)
    for c in columns:
        why = _left_out(c, label)
        if why:
            left_out.append((c.name, why))
        elif c.silver_type in DATE_TYPES:
            # Month and weekday, not the year: a batch scored later holds years
            # training never saw, which a categorical part cannot use.
            parts = ("month", "dayofweek", "hour") if c.silver_type == "timestamp" else ()
            dates.append((c.name, parts or ("month", "dayofweek")))
        elif c.silver_type == "boolean":
            # StringIndexer and Imputer take no booleans: a 0/1 number instead
            flag = free_name(f"{c.name}_flag", used)
            used.append(flag)
            derive[flag] = f"CAST(`{c.name}` AS INT)"
            numeric.append(flag)
        elif c.silver_type in ("int", "long") and c.distinct <= CATEGORICAL_INTS:
            categorical.append(c.name)
        elif c.silver_type in NUMERIC_TYPES or c.silver_type.startswith("decimal"):
            numeric.append(c.name)
        else:
            categorical.append(c.name)
    return Features(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        dates=tuple(dates),
        derive=derive,
        left_out=tuple(left_out),
    )


def _left_out(c: ColumnProfile, label: str | None) -> str:
    """Why a column is no feature ("" when it is one)."""
    if c.name == label:
        return "the label"
    if c.non_null == 0:
        return "all null"
    if c.distinct == 1:
        return f"constant in the sample ({next(iter(c.counts))!r})"
    if c.silver_type in DATE_TYPES:
        return ""
    if c.id_like_name:
        return "its name looks like an id"
    if c.consecutive:
        return "an id (unique consecutive integers)"
    if c.looks_like_id:
        return "an id (UUIDs)"
    if c.silver_type != "string":
        return ""
    share = f"{c.distinct:,} distinct of {c.non_null:,}"
    if c.distinct > 20 and c.distinct >= 0.9 * c.non_null:
        return f"near-unique ({share})"
    if c.distinct > MAX_CATEGORIES:
        return f"too many categories ({share})"
    if c.mean_length > 50:
        return f"free text ({c.mean_length:.0f} characters on average)"
    return ""
