"""What text values are: identifiers for column names, null markers, column types.

Pure functions on strings. A type is the narrowest the ingest step can cast
every value to (`int` < `long` < `double`; dates and timestamps with the Spark
datetime pattern that parses all of them); anything else stays `string`, or
`string` plus a clean `parse` when the numbers are written with a decimal
comma or digit groups, which no cast reads.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from lakeforge.config.models import RESERVED_COLUMNS

# Text that means "missing" in files found in the wild. `-` also occurs as a
# real value, so it counts only in a column that is otherwise typed; a whole
# value of `?` is "unknown" in text columns too (the UCI files' convention).
MARKERS = frozenset({"?", "NA", "N/A", "-", "null", "NULL", "None", "nan", ""})
CLASSIC_MARKERS = frozenset({"?", "NA", "N/A", "null", "NULL", "None", "nan", ""})

_INT = re.compile(r"^[+-]?\d+$")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# 1.234,5 / 12,5 (decimal comma) and 1,234.5 / 1,234 (comma groups)
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d+|\d{1,3}(\.\d{3})+)(,\d+)?$")
_COMMA_GROUPS = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1

_YMD = re.compile(r"^(?P<y>\d{4})(?P<s>[-/])(?P<a>\d{1,2})(?P=s)(?P<b>\d{1,2})")
_XYY = re.compile(r"^(?P<a>\d{1,2})(?P<s>[-/.])(?P<b>\d{1,2})(?P=s)(?P<y>\d{4})")
_TIME = re.compile(
    r"^(?P<sep>[ T])(?P<H>\d{1,2}):(?P<m>\d{2})(:(?P<S>\d{2})(\.(?P<f>\d{1,9}))?)?"
    r"(?P<z>Z|[+-]\d{2}:\d{2})?$"
)


@dataclass(frozen=True)
class Parse:
    """A clean `parse` entry: bronze keeps the text, clean reads the number."""

    type: str
    decimal: str
    group: str


@dataclass(frozen=True)
class Inferred:
    type: str
    format: str | None = None
    parse: Parse | None = None
    # what a person should check about this guess ("" when nothing)
    review: str = ""


def identifier(text: str, position: int) -> str:
    """`Culmen Length (mm)` → `culmen_length_mm`, `studyName` → `study_name`;
    `col_N` (N = position, from 1) when nothing is left."""
    ascii_text = (
        unicodedata.normalize("NFKD", text.replace("ß", "ss")).encode("ascii", "ignore").decode()
    )
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", ascii_text)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    name = re.sub(r"[^A-Za-z0-9]+", "_", spaced).strip("_").lower()
    if not name:
        return f"col_{position}"
    return f"col_{name}" if name[0].isdigit() else name


def unique_names(headers: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """One identifier per header, unique (`_2`, `_3` appended) and never a
    lineage column's name."""
    # nor a column the model's stages write (Spark ML refuses to overwrite one)
    used = {*taken, *RESERVED_COLUMNS, "features", "prediction", "probability", "rawPrediction"}
    names: list[str] = []
    for i, header in enumerate(headers, start=1):
        base = identifier(header, i)
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names.append(name)
    return names


def free_name(base: str, used: Iterable[str]) -> str:
    """`base`, or `base_2`, `base_3`... whichever is not in `used`."""
    taken = set(used)
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def infer_type(values: Sequence[str], delimiter: str = ",") -> Inferred:
    """The type of a column from its stripped, non-null values; `delimiter`
    breaks the tie between `1,234` read as a decimal comma or a digit group."""
    if not values:
        return Inferred("string", review="no value in the sample: string assumed")
    if all(v.lower() in ("true", "false") for v in values):
        return Inferred("boolean")
    if all(_INT.match(v) for v in values):
        return _integer(values)
    if all(_FLOAT.match(v) for v in values):
        return Inferred("double")
    numeric = _written_number(values, delimiter)
    if numeric is not None:
        return numeric
    return _date_or_time(values) or Inferred("string")


def _integer(values: Sequence[str]) -> Inferred:
    if any(_LEADING_ZERO.match(v) for v in values):
        return Inferred("string", review="digits with leading zeros (a code, not a number?)")
    largest = max(abs(int(v)) for v in values)
    if largest <= _INT32:
        return Inferred("int")
    if largest <= _INT64:
        return Inferred("long")
    return Inferred("string", review="integers beyond the long range: kept as text")


def _written_number(values: Sequence[str], delimiter: str) -> Inferred | None:
    """Numbers a cast cannot read: `1.234,5` or `1,234.5`."""
    if not any("," in v for v in values):
        return None
    comma_decimal = all(_DECIMAL_COMMA.match(v) for v in values)
    comma_groups = all(_COMMA_GROUPS.match(v) for v in values)
    if comma_decimal and comma_groups:
        # `1,234` alone: a comma-separated file writes decimals with a point
        comma_decimal = delimiter != ","
    if comma_decimal:
        return Inferred(
            "string",
            parse=Parse("double", decimal=",", group="."),
            review="decimal comma: kept as text in bronze, parsed to double by clean",
        )
    if comma_groups:
        kind = "double" if any("." in v for v in values) else "long"
        return Inferred(
            "string",
            parse=Parse(kind, decimal=".", group=","),
            review=f"digit groups (1,234): kept as text in bronze, parsed to {kind} by clean",
        )
    return None


def _date_or_time(values: Sequence[str]) -> Inferred | None:
    """A date or timestamp type with the one Spark pattern that reads every value."""
    first = _YMD.match(values[0]) or _XYY.match(values[0])
    if first is None:
        return None
    pattern, sep = first.re, first.group("s")
    days: list[re.Match[str]] = []
    times: list[re.Match[str]] = []
    for v in values:
        day = pattern.match(v)
        if day is None or day.group("s") != sep:
            return None
        rest = v[day.end() :]
        time = _TIME.match(rest) if rest else None
        if rest and time is None:
            return None
        days.append(day)
        if time is not None:
            times.append(time)
    if times and len(times) != len(days):
        return None
    order, review = _day_order(days, year_first=pattern is _YMD)
    for day in days:
        a, b = int(day.group("a")), int(day.group("b"))
        month, dom = (a, b) if order == "MD" else (b, a)
        try:
            date(int(day.group("y")), month, dom)
        except ValueError:
            return None
    letters = ("M", "d") if order == "MD" else ("d", "M")
    field_a, field_b = (
        letter * 2 if all(len(d.group(g)) == 2 for d in days) else letter
        for letter, g in zip(letters, "ab", strict=True)
    )
    if pattern is _YMD:
        day_pattern = f"yyyy{sep}{field_a}{sep}{field_b}"
    else:
        day_pattern = f"{field_a}{sep}{field_b}{sep}yyyy"
    if not times:
        return Inferred("date", format=day_pattern, review=review)
    time_pattern = _time_pattern(times)
    if time_pattern is None:
        return None
    return Inferred("timestamp", format=day_pattern + time_pattern, review=review)


def _day_order(days: Sequence[re.Match[str]], *, year_first: bool) -> tuple[str, str]:
    """Month then day ("MD") or day then month ("DM"), and a review note when
    the sample cannot tell."""
    if year_first or any(int(d.group("b")) > 12 for d in days):
        return "MD", ""
    if any(int(d.group("a")) > 12 for d in days):
        return "DM", ""
    return "DM", "day and month order is ambiguous in the sample: day first assumed"


def _time_pattern(times: Sequence[re.Match[str]]) -> str | None:
    """`HH:mm:ss` and friends for the time part; None when the values mix forms
    that no one pattern reads (a zone on some only, `T` and space)."""
    for t in times:
        if int(t.group("H")) > 23 or int(t.group("m")) > 59 or int(t.group("S") or 0) > 59:
            return None
    zones = [t.group("z") is not None for t in times]
    seps = {t.group("sep") for t in times}
    if (any(zones) and not all(zones)) or len(seps) > 1:
        return None
    sep = "'T'" if seps == {"T"} else " "
    hours = "HH" if all(len(t.group("H")) == 2 for t in times) else "H"
    fraction = max(len(t.group("f") or "") for t in times)
    tail = ""
    if fraction:
        frac = "." + "S" * fraction
        tail = frac if all(t.group("f") for t in times) else f"[{frac}]"
    seconds = [t.group("S") is not None for t in times]
    if all(seconds):
        clock = f"{hours}:mm:ss{tail}"
    elif any(seconds):
        clock = f"{hours}:mm[:ss{tail}]"
    else:
        clock = f"{hours}:mm"
    return f"{sep}{clock}{'XXX' if all(zones) else ''}"
