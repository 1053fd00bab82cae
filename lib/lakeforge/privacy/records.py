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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

import numpy as np

from lakeforge.config.cleaning import CleanSteps
from lakeforge.config.privacy import Privacy, Protection
from lakeforge.errors import ConfigError
from lakeforge.privacy.keys import MIN_KEY_BYTES, key_check, normalised, pseudonym

# the one form a date is sent in (Python's fromisoformat alone also takes
# 20240131 and 2024-W05-3, which Spark reads otherwise)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
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


def unsupported(
    column: str, protection: Protection, source_type: str, parsed: bool = False
) -> str | None:
    """Why a record's value of `column` cannot be protected outside Spark
    exactly as silver holds it; None when it can."""
    if parsed:
        return f"privacy: {column} is protected and then parsed by clean: not reproduced online"
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
class TextSteps:
    """Clean's steps on one text column, in clean's order (clean/transform.py
    `normalise`): trim (Spark's trim removes spaces only; blank → null),
    upper, lower, replace (a whole value for another)."""

    trim: bool = False
    upper: bool = False
    lower: bool = False
    replace: dict[str, str] | None = None

    def __call__(self, text: str) -> str | None:
        if self.trim:
            text = text.strip(" ")
            if not text:
                return None
        if self.upper:
            text = text.upper()
        if self.lower:
            text = text.lower()
        if self.replace:
            text = self.replace.get(text, text)
        return text


@dataclass(frozen=True)
class RecordProtector:
    """The protections of a model's inputs, with the key when one is
    pseudonymised. `columns` maps an input to (its protection, its source
    type as the dataset config names it: int, string, decimal(10,2), ...)."""

    columns: Mapping[str, tuple[Protection, str]]
    key: bytes | None = field(default=None, repr=False)
    # clean's text steps on an input whose protected form is text (a prefix
    # keeps spaces that clean trims): the model reads silver, not bronze
    texts: Mapping[str, TextSteps] = field(default_factory=dict)

    @classmethod
    def from_recorded(cls, recorded: Mapping[str, Any] | None) -> RecordProtector | None:
        """The protector for what train recorded (`describe`), with the key
        read from the recorded variable. None when no input is protected.
        Raises ConfigError when the key is unset, short, or not the one
        bronze was protected with (its check value differs)."""
        specs = (recorded or {}).get("columns") or {}
        columns = {
            name: (Protection(**spec["protection"]), str(spec["type"]))
            for name, spec in specs.items()
        }
        if not columns:
            return None
        assert recorded is not None
        texts = {
            name: TextSteps(**spec["clean"]) for name, spec in specs.items() if spec.get("clean")
        }
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
        return cls(columns, key, texts)

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
        """`value` (of source type `source_type`) as silver holds it: protected
        as in bronze, then clean's text steps."""
        protected = self._bronze(column, protection, source_type, value)
        steps = self.texts.get(column)
        return protected if steps is None or not isinstance(protected, str) else steps(protected)

    def _bronze(self, column: str, protection: Protection, source_type: str, value: Any) -> Any:
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
    privacy: Privacy | None,
    types: Mapping[str, str],
    inputs: list[str],
    key_check_value: str | None,
    clean: CleanSteps | None = None,
) -> dict[str, Any]:
    """What the online scorer needs to protect `inputs` as ingest did and
    clean went on: per protected input its protection, source type and (for
    a text form) clean's text steps; the key's variable and check value
    (never the key). `columns` is empty when no input is protected."""
    clean = clean or CleanSteps()
    columns: dict[str, Any] = {}
    for name in inputs:
        protection = privacy.columns.get(name) if privacy is not None else None
        if protection is None or name not in types:
            continue
        spec: dict[str, Any] = {
            "protection": protection.model_dump(exclude_none=True),
            "type": types[name],
        }
        as_text = protection.action in ("pseudonymise", "mask") or protection.prefix is not None
        if as_text:
            spec["clean"] = {
                "trim": clean.trim,
                "upper": name in clean.upper,
                "lower": name in clean.lower,
                "replace": clean.replace.get(name),
            }
        if name in clean.parse:
            spec["parsed"] = True
        columns[name] = spec
    return {
        "key_env": privacy.key_env if privacy is not None else None,
        "key_check": key_check_value if columns else None,
        "columns": columns,
    }


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _typed(column: str, source_type: str, value: Any) -> Any:
    """`value` as the source column would hold it (None for a missing one)."""
    if isinstance(value, np.generic):
        value = value.item()
    if _missing(value):
        return None
    if source_type == "string":
        if not isinstance(value, str):
            raise InvalidValue(column, f"expected a string, got {type(value).__name__}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no file could hold it
            raise InvalidValue(column, "not valid Unicode text") from None
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
            if not isinstance(value, str) or not ISO_DATE.match(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise InvalidValue(column, "expected a date 'YYYY-MM-DD'") from None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidValue(column, f"expected a number, got {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise InvalidValue(column, "expected a finite number")
    if source_type in _INTEGRAL:
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidValue(column, "expected an integer")
        if isinstance(value, float | Decimal) and value != int(value):
            raise InvalidValue(column, "expected an integer")
        whole = int(value)
        bound = _INTEGRAL[source_type]
        if not -bound <= whole < bound:
            raise InvalidValue(column, f"out of range for {source_type}")
        return whole
    if source_type in _FLOATING:
        try:
            number = float(value)
        except OverflowError:  # an integer past a double's range
            raise InvalidValue(column, "out of range") from None
        stored = float(np.float32(number)) if source_type == "float" else number
        if math.isinf(stored):
            raise InvalidValue(column, f"out of range for {source_type}")
        return stored
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
    return _no_negative_zero(held)


def _no_negative_zero(number: Decimal) -> Decimal:
    """Spark's decimals have no -0 (-0.001 as a decimal(10,2) is 0.00)."""
    return number.copy_abs() if number.is_zero() else number


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
        return _no_negative_zero(held)
