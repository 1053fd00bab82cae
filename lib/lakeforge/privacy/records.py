"""The `privacy:` block applied to one record outside Spark: what the online
scorer does to a request before the model reads it or the inference log
stores it, so a served record gets exactly the value bronze would have held
(an age of 37 is scored, and logged, as its band 35, as training saw it;
an id as its pseudonym), and the clear value is never written.

This is protect.py's twin in plain Python. Each action gives, for a value
of the column's source type, what Spark's SQL gives in bronze;
tests/unit/test_privacy_records.py checks every action on every supported
type against Spark on the same values. What cannot be reproduced exactly
(Java's text of a float or double, of a timestamp) is refused by
`unsupported`, and train then registers the model for batch scoring only.

Imports no Spark: the server process never starts a JVM.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import numpy as np

from lakeforge.config.privacy import Privacy, Protection
from lakeforge.errors import ConfigError
from lakeforge.privacy.keys import MIN_KEY_BYTES, key_check, normalised, pseudonym

# the bounds of Spark's integral types, by the config's type names
_INTEGRAL = {"byte": 2**7, "short": 2**15, "int": 2**31, "long": 2**63}
_FLOATING = ("float", "double")
# enough for any decimal Spark holds (38 digits) and a band's arithmetic on it
_DIGITS = 80


class InvalidValue(ValueError):
    """A value the column's source type cannot hold (`problem` says why)."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(f"{column}: {problem}")
        self.column = column
        self.problem = problem


def unsupported(column: str, protection: Protection, source_type: str) -> str | None:
    """Why a record's value of `column` cannot be protected outside Spark
    exactly as in bronze; None when it can."""
    as_text = protection.action in ("pseudonymise", "mask")
    if as_text and (source_type in _FLOATING or source_type == "timestamp"):
        return (
            f"privacy: {column} ({source_type}) is {protection.action}d from its text, and "
            f"Spark's text of a {source_type} cannot be reproduced exactly outside Spark"
        )
    if source_type == "timestamp":
        return f"privacy: {column} is a timestamp: not an online input"
    return None


@dataclass(frozen=True)
class RecordProtector:
    """The protections of a model's inputs, with the key when one is
    pseudonymised. `columns` maps an input to (its protection, its source
    type as the dataset config names it: int, string, decimal(10,2), ...)."""

    columns: Mapping[str, tuple[Protection, str]]
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_recorded(cls, recorded: Mapping[str, Any]) -> RecordProtector | None:
        """The protector for what train recorded (`describe`), with the key
        read from the recorded variable. None when no input is protected.
        Raises ConfigError when the key is unset, short, or not the one
        bronze was protected with (its check value differs)."""
        columns = {
            name: (Protection(**spec["protection"]), str(spec["type"]))
            for name, spec in (recorded.get("columns") or {}).items()
        }
        if not columns:
            return None
        key = None
        if any(p.action == "pseudonymise" for p, _ in columns.values()):
            variable = str(recorded.get("key_env"))
            value = os.environ.get(variable, "").encode("utf-8")
            if len(value) < MIN_KEY_BYTES:
                raise ConfigError(
                    f"the model reads pseudonymised input(s) and {variable} (privacy.key_env) "
                    f"is {'unset' if not value else 'shorter than the key'}: export the key "
                    "bronze was protected with before serving"
                )
            if key_check(value) != recorded.get("key_check"):
                raise ConfigError(
                    f"the key in {variable} is not the one this model's training data was "
                    "pseudonymised with (its check value differs): its pseudonyms would "
                    "match nothing the model learnt"
                )
            key = value
        return cls(columns, key)

    def protect(self, records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each record with its protected fields in their bronze form (other
        fields as sent). Raises InvalidValue naming the first bad field."""
        out: list[dict[str, Any]] = []
        for record in records:
            fresh = dict(record)
            for column, (protection, source_type) in self.columns.items():
                if column in fresh:
                    fresh[column] = self.value(column, protection, source_type, fresh[column])
            out.append(fresh)
        return out

    def protect_columns(self, columns: Mapping[str, list[Any]]) -> dict[str, list[Any]]:
        """`columns` (name -> values) with the protected ones protected."""
        out = dict(columns)
        for column, (protection, source_type) in self.columns.items():
            if column in out:
                out[column] = [self.value(column, protection, source_type, v) for v in out[column]]
        return out

    def value(self, column: str, protection: Protection, source_type: str, value: Any) -> Any:
        """`value` (of source type `source_type`) as bronze holds it."""
        typed = _typed(column, source_type, value)
        if typed is None:
            return None
        if protection.action == "pseudonymise":
            text = normalised(_text(typed))
            if text is None:
                return None
            assert self.key is not None  # from_recorded read it
            return pseudonym(self.key, text)
        if protection.action == "mask":
            text = normalised(_text(typed))
            return None if text is None else _mask(text, protection)
        if protection.action == "generalise":
            return _generalise(typed, protection, source_type)
        return None  # drop: never an input


def describe(
    privacy: Privacy | None, types: Mapping[str, str], inputs: list[str], key: bytes | None
) -> dict[str, Any]:
    """What the online scorer needs to protect `inputs` as ingest did: per
    protected input its protection and source type, the key's variable and
    its check value (never the key). Empty when no input is protected."""
    if privacy is None:
        return {}
    columns = {
        name: {
            "protection": privacy.columns[name].model_dump(exclude_none=True),
            "type": types[name],
        }
        for name in inputs
        if name in privacy.columns and name in types
    }
    if not columns:
        return {}
    return {
        "key_env": privacy.key_env,
        "key_check": key_check(key) if key is not None else None,
        "columns": columns,
    }


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _typed(column: str, source_type: str, value: Any) -> Any:
    """`value` as the source column would hold it (None for a missing one)."""
    if _missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if source_type == "string":
        if not isinstance(value, str):
            raise InvalidValue(column, f"expected a string, got {type(value).__name__}")
        return value
    if source_type == "boolean":
        if not isinstance(value, bool):
            raise InvalidValue(column, f"expected true or false, got {type(value).__name__}")
        return value
    if source_type == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise InvalidValue(column, "expected a date 'YYYY-MM-DD'") from None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidValue(column, f"expected a number, got {type(value).__name__}")
    if source_type in _INTEGRAL:
        if isinstance(value, float) and not value.is_integer():
            raise InvalidValue(column, "expected an integer")
        whole = int(value)
        bound = _INTEGRAL[source_type]
        if not -bound <= whole < bound:
            raise InvalidValue(column, f"out of range for {source_type}")
        return whole
    if source_type in _FLOATING:
        number = float(value)
        if math.isinf(number):
            raise InvalidValue(column, "out of range")
        return float(np.float32(number)) if source_type == "float" else number
    precision, scale = _decimal_shape(source_type)
    try:
        with localcontext() as context:
            context.prec = _DIGITS  # decimal(38, s) needs more than Python's 28
            exact = Decimal(repr(value) if isinstance(value, float) else value)
            held = exact.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise InvalidValue(column, f"out of range for {source_type}") from None
    if len(held.as_tuple().digits) > precision and held != 0:
        raise InvalidValue(column, f"out of range for {source_type}")
    return held


def _decimal_shape(source_type: str) -> tuple[int, int]:
    inside = source_type[source_type.index("(") + 1 : source_type.index(")")]
    precision, scale = (int(part) for part in inside.split(","))
    return precision, scale


def _text(value: Any) -> str:
    """Spark's CAST(value AS STRING) for the supported types."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _mask(text: str, p: Protection) -> str:
    kept = p.keep_last or p.keep_first or 0
    if not kept or len(text) <= kept:
        return p.mask_char * len(text)
    hidden = p.mask_char * (len(text) - kept)
    return hidden + text[-kept:] if p.keep_last else text[:kept] + hidden


def _generalise(value: Any, p: Protection, source_type: str) -> Any:
    if p.prefix is not None:
        return value[: p.prefix]
    if p.to is not None:
        return value.replace(day=1) if p.to == "month" else value.replace(month=1, day=1)
    assert p.band is not None
    if source_type in _FLOATING:
        ratio = value / p.band
        if math.isnan(value) or abs(ratio) >= 9.0e15:
            return value
        bound = float(math.floor(ratio)) * p.band
        return float(np.float32(bound)) if source_type == "float" else bound
    with localcontext() as context:
        context.prec = _DIGITS
        band = Decimal(repr(p.band))
        exact = Decimal(value)
        rest = exact % band  # Python's sign follows the dividend; pmod's is >= 0
        if rest < 0:
            rest += band
        lower = exact - rest
        if source_type in _INTEGRAL:
            whole = int(lower.to_integral_value(rounding=ROUND_FLOOR))
            bound = _INTEGRAL[source_type]
            return whole if -bound <= whole < bound else None
        precision, scale = _decimal_shape(source_type)
        held = lower.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        if len(held.as_tuple().digits) > precision and held != 0:
            return None
        return held
