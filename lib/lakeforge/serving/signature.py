"""What the online model reads: one input per silver column, its kind, and
how a record's values become the model's input tensors.

One function (`feeds`) turns columns of values into tensors, for a JSON
record at the server and for a pandas batch of test rows at training's
parity check, so both score exactly the same inputs. Imports no Spark.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from lakeforge.privacy.records import ISO_DATE

# A null string input: no label a StringIndexer learnt can be this
# (serving/stages.py maps it to the index of an unseen value).
NULL_STRING = "\x00null"
_EPOCH = date(1970, 1, 1)

KINDS = ("number", "int", "string", "date")


class InvalidRecord(ValueError):
    """A record the model cannot read: `field` names the input, `problem` says why."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class Input:
    name: str
    kind: str  # one of KINDS
    # the categories a model with handle_invalid error/skip knows; a value
    # outside them is refused (Spark would fail or drop the row)
    categories: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Signature:
    task: str  # binary, multiclass, regression
    classes: int  # 0 for regression
    inputs: tuple[Input, ...]
    parity: float = math.nan  # the largest difference to Spark on the test split
    rows_checked: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # how ingest protected the inputs that hold personal data, for the server
    # to protect a request the same way (privacy/records.py `describe`);
    # None: trained before lakeforge recorded it
    privacy: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> Signature:
        data = json.loads(text)
        inputs = tuple(
            Input(i["name"], i["kind"], tuple(i["categories"]) if i["categories"] else None)
            for i in data.pop("inputs")
        )
        return cls(inputs=inputs, **data)

    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def source_type(self, name: str) -> str | None:
        """The source column type a protected input is sent as (in clear), or None."""
        spec = ((self.privacy or {}).get("columns") or {}).get(name)
        return None if spec is None else str(spec["type"])

    def protection(self, name: str) -> str | None:
        """The privacy action applied to input `name` (sent in clear, stored
        protected), or None."""
        spec = ((self.privacy or {}).get("columns") or {}).get(name)
        return None if spec is None else str(spec["protection"]["action"])


def feeds(
    signature: Signature, columns: Mapping[str, Sequence[Any]], rows: int
) -> dict[str, np.ndarray]:
    """The model's input tensors for `rows` rows of `columns` (a missing
    column is all null). Raises InvalidRecord naming the first bad field."""
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        values = columns.get(spec.name)
        if values is None:
            values = [None] * rows
        if spec.kind == "string":
            out[spec.name] = _strings(spec, values)
        elif spec.kind == "date":
            out[spec.name] = np.array([[_days(spec.name, v)] for v in values], dtype=np.float64)
        else:
            integral = spec.kind == "int"
            out[spec.name] = np.array(
                [[_number(spec.name, v, integral)] for v in values], dtype=np.float64
            )
    return out


def _missing(value: Any) -> bool:
    """None, NaN, and pandas' own markers (NA in a nullable column, NaT)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


# the range of silver's largest integer type (Spark's LongType)
_LONG = 2**63


def _number(name: str, value: Any, integral: bool) -> float:
    if _missing(value):
        return math.nan
    if isinstance(value, bool | str) or not isinstance(value, int | float | np.number | Decimal):
        raise InvalidRecord(name, f"expected a number, got {type(value).__name__} {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidRecord(name, f"the number {str(value)[:40]}... is out of range") from None
    if math.isinf(number) or (integral and abs(number) >= _LONG):
        raise InvalidRecord(name, f"the number {value!r} is out of range")
    if integral and not number.is_integer():
        # the silver column holds integers: Spark could never have read this
        raise InvalidRecord(name, f"expected an integer, got {value!r}")
    return number


def _strings(spec: Input, values: Sequence[Any]) -> np.ndarray:
    column = np.empty((len(values), 1), dtype=object)
    for i, value in enumerate(values):
        if _missing(value):
            if spec.categories is not None:
                raise InvalidRecord(spec.name, "null, and the model refuses missing categories")
            column[i, 0] = NULL_STRING
            continue
        if not isinstance(value, str):
            raise InvalidRecord(
                spec.name, f"expected a string, got {type(value).__name__} {value!r}"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the inference log could not hold it
            raise InvalidRecord(spec.name, "not valid Unicode text") from None
        if spec.categories is not None and value not in spec.categories:
            raise InvalidRecord(
                spec.name, f"unseen category {value!r}, and the model refuses unseen categories"
            )
        column[i, 0] = value
    return column


def _days(name: str, value: Any) -> float:
    """Days since 1970-01-01 of a date (an ISO 'YYYY-MM-DD' string in JSON)."""
    if _missing(value):
        return math.nan
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            if not ISO_DATE.match(value):
                raise ValueError(value)
            value = date.fromisoformat(value)
        except ValueError:
            raise InvalidRecord(name, f"expected a date 'YYYY-MM-DD', got {value!r}") from None
    if isinstance(value, np.datetime64):
        return float(value.astype("datetime64[D]").astype(np.int64))
    if not isinstance(value, date):
        raise InvalidRecord(name, f"expected a date 'YYYY-MM-DD', got {type(value).__name__}")
    return float((value - _EPOCH).days)
