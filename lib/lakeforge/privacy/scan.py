"""The PII scan at ingest: text columns the `privacy:` block does not cover
whose values look like personal data.

For each such column, one Spark aggregation over the batch counts the
non-null values and, per kind, those that look like one (spaces around a
value ignored):

- e-mail addresses: `local@domain.tld`;
- phone numbers: 9 to 15 digits written as one: international (`+44 20 7946
  0958`, `0044...`), North American (`(555) 123-4567`, `555.123.4567`) or a
  national number with a trunk 0 (`020 7946 0958`, `07700 900123`). A bare
  run of digits without a leading 0 or `+` is not counted (ids are);
- payment card numbers: 13 to 19 digits, single spaces or dashes between them
  allowed, passing the Luhn check;
- national ids: a US social security number (`ddd-dd-dddd`, area not 000,
  666 or 9xx) or a UK national insurance number (`QQ 12 34 56 C`, valid
  prefix letters).

A column is reported when the share of its non-null values of one kind
reaches `privacy.undeclared_share` (0.5 by default): a warning naming the
column, the kind and the share, never a value. `undeclared: fail` makes it
an UndeclaredPersonalData error (exit 4) before anything is written;
`ignore` skips the scan. Only the aggregate row reaches the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakeforge.config.privacy import Privacy
from lakeforge.errors import UndeclaredPersonalData
from lakeforge.sqltext import name, text

log = logging.getLogger(__name__)

_EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+([.][A-Za-z0-9-]+)*[.][A-Za-z]{2,}$"
_PHONES = (
    r"^([+]|00)[1-9][0-9 ().-]{6,}[0-9]$",
    r"^[(]?[0-9]{3}[)]?[ .-]?[0-9]{3}[ .-][0-9]{4}$",
    r"^0[1-9][0-9]{1,3} ?[0-9]{3,4} ?[0-9]{3,4}$",
)
_CARD = r"^[0-9]([ -]?[0-9]){12,18}$"
_SSN = r"^(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}$"
_NINO = r"^(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$"


def _email(v: str) -> str:
    return f"{v} RLIKE {text(_EMAIL)}"


def _phone(v: str) -> str:
    shapes = " OR ".join(f"{v} RLIKE {text(p)}" for p in _PHONES)
    return f"(({shapes}) AND char_length(regexp_replace({v}, '[^0-9]', '')) BETWEEN 9 AND 15)"


def _card(v: str) -> str:
    # Luhn, right to left: every second digit doubled (minus 9 past 9), sum % 10 == 0
    digits = f"reverse(split(regexp_replace({v}, '[ -]', ''), ''))"
    doubled = (
        "CASE WHEN i % 2 = 1 THEN 2 * try_cast(d AS INT) - "
        "CASE WHEN try_cast(d AS INT) > 4 THEN 9 ELSE 0 END ELSE try_cast(d AS INT) END"
    )
    luhn = (
        f"aggregate(transform({digits}, (d, i) -> {doubled}), 0, (total, n) -> total + n) % 10 = 0"
    )
    return f"(CASE WHEN {v} RLIKE {text(_CARD)} THEN {luhn} ELSE false END)"


def _national_id(v: str) -> str:
    nino = f"upper(replace({v}, ' ', '')) RLIKE {text(_NINO)}"
    return f"({v} RLIKE {text(_SSN)} OR {nino})"


# kind (as a warning names it) → SQL condition over a trimmed text value
KINDS = {
    "e-mail addresses": _email,
    "phone numbers": _phone,
    "payment card numbers": _card,
    "national ids": _national_id,
}


@dataclass(frozen=True)
class Finding:
    """`share` of the `values` non-null values of `column` look like `kind`."""

    column: str
    kind: str
    share: float
    values: int

    def describe(self) -> str:
        return (
            f"column {self.column} looks like {self.kind}: {self.share:.0%} of its "
            f"{self.values} non-null values"
        )


def undeclared_columns(df: DataFrame, privacy: Privacy, candidates: Sequence[str]) -> list[str]:
    """The text columns among `candidates` that the block does not cover."""
    types = {f.name: f.dataType for f in df.schema.fields}
    return [
        c for c in candidates if isinstance(types.get(c), T.StringType) and c not in privacy.columns
    ]


def shares(df: DataFrame, columns: Sequence[str]) -> list[Finding]:
    """Per column and kind, the share of non-null values of that kind (every
    pair, reported or not), from one aggregation over `df`."""
    if not columns:
        return []
    aggregates = []
    for i, column in enumerate(columns):
        value = f"trim({name(column)})"
        aggregates.append(F.expr(f"count({name(column)})").alias(f"n{i}"))
        for j, looks_like in enumerate(KINDS.values()):
            aggregates.append(F.expr(f"count_if({looks_like(value)})").alias(f"k{i}_{j}"))
    row = df.agg(*aggregates).first()
    assert row is not None  # a global aggregation has one row
    found = []
    for i, column in enumerate(columns):
        values = int(row[f"n{i}"])
        for j, kind in enumerate(KINDS):
            hits = int(row[f"k{i}_{j}"])
            found.append(Finding(column, kind, hits / values if values else 0.0, values))
    return found


def check(
    df: DataFrame, privacy: Privacy, dataset: str, candidates: Sequence[str]
) -> list[Finding]:
    """Scan the text columns among `candidates` that the block does not cover
    and act as `privacy.undeclared` says: `warn` logs each finding and
    returns them, `fail` raises UndeclaredPersonalData naming them, `ignore`
    scans nothing. Messages give the column, kind and share, never a value."""
    if privacy.undeclared == "ignore":
        return []
    found = [
        f
        for f in shares(df, undeclared_columns(df, privacy, candidates))
        if f.values and f.share >= privacy.undeclared_share
    ]
    advice = (
        "privacy.columns does not cover it (pseudonymise, mask, generalise or drop it "
        "there, or set privacy.undeclared: ignore)"
    )
    if found and privacy.undeclared == "fail":
        raise UndeclaredPersonalData(
            f"dataset {dataset}: "
            + "; ".join(f.describe() for f in found)
            + f"; {advice}; privacy.undeclared is fail, so nothing was written to bronze"
        )
    for f in found:
        log.warning("ingest: %s; %s", f.describe(), advice)
    return found
