"""Column profiles of a sample (name, type, null markers, counts) and the key it suggests.

Pure functions on a `Sample`. A key is proposed only when the sample can
vouch for it: unique and never null in it, and either the sample is the whole
file or the column looks like an id (by name, or as unique consecutive
integers). Without keys every row is a distinct observation, so a wrong key
(which would merge distinct rows) is worse than none.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations

from lakeforge.config.models import RESERVED_COLUMNS
from lakeforge.starter.infer import CLASSIC_MARKERS, MARKERS, Parse, infer_type, unique_names
from lakeforge.starter.sample import Sample

_ID_NAME = re.compile(r"(^|_)(id|ids|key|uuid|guid|number|no|nr|num)$|^id_")
_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEY_TYPES = ("int", "long", "string", "date", "timestamp")
_PAIR_COLUMNS = 20  # pairs of at most this many candidate columns are tried (190 pairs)


@dataclass(frozen=True)
class ColumnProfile:
    """One column of the sample: what to declare, and its values' counts."""

    header: str  # as the file names it
    name: str  # the identifier bronze uses
    type: str  # the declared (bronze) type
    rows: int
    nulls: int  # missing or a null marker
    counts: Counter[str]  # stripped non-null values -> rows
    format: str | None = None
    parse: Parse | None = None
    null_markers: frozenset[str] = frozenset()  # exact texts read as null
    review: str = ""

    @property
    def silver_type(self) -> str:
        """The type after clean (a parsed column's target type)."""
        return self.parse.type if self.parse else self.type

    @property
    def distinct(self) -> int:
        return len(self.counts)

    @property
    def non_null(self) -> int:
        return self.rows - self.nulls

    @property
    def id_like_name(self) -> bool:
        return bool(_ID_NAME.search(self.name.lower()))

    @property
    def consecutive(self) -> bool:
        """Unique integers without gaps (a row number)."""
        if self.silver_type not in ("int", "long") or self.parse or self.distinct < 2:
            return False
        numbers = sorted(int(v) for v in self.counts)
        return self.distinct == self.non_null and numbers[-1] - numbers[0] == len(numbers) - 1

    @property
    def looks_like_id(self) -> bool:
        uuids = self.type == "string" and self.counts and all(_UUID.match(v) for v in self.counts)
        return self.id_like_name or self.consecutive or bool(uuids)

    @property
    def mean_length(self) -> float:
        total = sum(len(v) * n for v, n in self.counts.items())
        return total / max(1, self.non_null)


@dataclass(frozen=True)
class Profile:
    columns: tuple[ColumnProfile, ...]
    # the sample's rows, one value per profiled column (raw text)
    rows: tuple[tuple[str | None, ...], ...]
    whole_file: bool
    # file columns no schema column can declare: (header, why)
    skipped: tuple[tuple[str, str], ...]


def profile(sample: Sample) -> Profile:
    """A profile per column the schema can declare; the others with the reason."""
    csv = sample.format == "csv"
    names = unique_names(sample.headers)
    delimiter = sample.csv.delimiter if sample.csv else ","
    named = csv and sample.csv is not None and sample.csv.header
    repeated = {h for h in sample.headers if sample.headers.count(h) > 1}
    columns: list[ColumnProfile] = []
    kept: list[int] = []
    skipped: list[tuple[str, str]] = []
    for j, (header, name) in enumerate(zip(sample.headers, names, strict=True)):
        if header in sample.unsupported:
            skipped.append((header, f"{sample.format} type {sample.unsupported[header]}"))
            continue
        if not csv:
            # JSON and Parquet columns are read by their own name: it must be one
            if not _IDENTIFIER.match(header) or header in RESERVED_COLUMNS:
                skipped.append((header, "its name is not an identifier (letters, digits, _)"))
                continue
            name = header
        values = [row[j] for row in sample.rows]
        kept.append(j)
        column = profile_column(
            header,
            name,
            values,
            fixed_type=sample.types.get(header),
            markers_apply=csv,
            delimiter=delimiter,
        )
        # ingest matches a CSV header to the columns by name
        problem = ""
        if named and not header:
            problem = "the file's header leaves this column unnamed: name it in the file"
        elif named and header in repeated:
            problem = f"the file's header names {header!r} twice: ingest reads it by position"
        if problem:
            column = replace(column, review="; ".join(r for r in (problem, column.review) if r))
        columns.append(column)
    rows = tuple(tuple(row[j] for j in kept) for row in sample.rows)
    return Profile(
        columns=tuple(columns), rows=rows, whole_file=sample.whole_file, skipped=tuple(skipped)
    )


def profile_column(
    header: str,
    name: str,
    values: Sequence[str | None],
    *,
    fixed_type: str | None = None,
    markers_apply: bool = True,
    delimiter: str = ",",
) -> ColumnProfile:
    """The type and counts of one column's sample values (None: no value).

    With `markers_apply` (CSV: ingest reads `source.csv.null_values` as null),
    a classic marker (`NA`, `null`, empty...) is null wherever it appears, and
    `?` or `-` only in a column whose other values are typed.
    """
    present = [v for v in values if v is not None]
    stripped = [v.strip() for v in present]
    review = ""
    counted: frozenset[str] = frozenset()
    if fixed_type is not None:
        inferred_type, fmt, parse = fixed_type, None, None
    else:
        candidates = [v for v in stripped if v not in MARKERS] if markers_apply else stripped
        inferred = infer_type(candidates, delimiter)
        if markers_apply:
            typed = inferred.type != "string" or inferred.parse is not None
            counted = MARKERS if typed else CLASSIC_MARKERS
        else:
            # JSON: null_values are a CSV option, so a marker among numbers keeps the text
            typed_without = infer_type([v for v in stripped if v not in MARKERS], delimiter)
            if inferred.type == "string" and typed_without.type != "string":
                review = (
                    f"text markers among {typed_without.type} values: null_values are for CSV "
                    "only, so the column stays text"
                )
        inferred_type, fmt, parse = inferred.type, inferred.format, inferred.parse
        review = review or inferred.review
    # ingest matches a marker with the spaces around it ignored
    markers = frozenset(v.strip() for v in present if v.strip() in counted)
    kept = [v for v in stripped if v not in counted]
    return ColumnProfile(
        header=header,
        name=name,
        type=inferred_type,
        rows=len(values),
        nulls=len(values) - len(kept),
        counts=Counter(kept),
        format=fmt,
        parse=parse,
        null_markers=markers,
        review=review if kept else "all null in the sample: string assumed",
    )


@dataclass(frozen=True)
class KeyChoice:
    columns: tuple[str, ...]
    why: str


def propose_keys(found: Profile) -> KeyChoice:
    """A column (or, when cheap, a pair) unique and never null on the sample,
    vouched for by the whole file having been read or by looking like an id;
    else no key, with the reason."""
    columns, rows, whole_file = found.columns, found.rows, found.whole_file
    n = len(rows)
    scope = f"all {n:,} rows of the file" if whole_file else f"the first {n:,} rows"
    duplicates = n - len(set(rows))
    if duplicates:
        return KeyChoice(
            (),
            f"{duplicates:,} of {scope} repeat another row exactly, so no column set is a key; "
            "every row is kept as a distinct observation",
        )
    candidates = [
        c for c in columns if c.silver_type in _KEY_TYPES and c.nulls == 0 and c.mean_length <= 64
    ]
    singles = [c for c in candidates if c.distinct == n]
    singles.sort(key=lambda c: not c.looks_like_id)
    for c in singles:
        if whole_file or c.looks_like_id:
            vouch = ", and looks like an id" if c.looks_like_id else ""
            return KeyChoice((c.name,), f"{c.name} is unique and never null in {scope}{vouch}")
    if singles:
        listed = ", ".join(c.name for c in singles[:3])
        return KeyChoice(
            (),
            f"{listed} unique in {scope}, but that is not the whole file and no name looks "
            "like an id; every row is a distinct observation",
        )
    pair = _unique_pair(candidates[:_PAIR_COLUMNS], columns, rows, whole_file)
    if pair:
        a, b = pair
        return KeyChoice((a, b), f"{a} + {b} is unique and never null in {scope}")
    return KeyChoice(
        (),
        f"no column (or pair of columns) is unique and never null in {scope}; "
        "every row is a distinct observation",
    )


def _unique_pair(
    candidates: Sequence[ColumnProfile],
    columns: Sequence[ColumnProfile],
    rows: Sequence[Sequence[str | None]],
    whole_file: bool,
) -> tuple[str, str] | None:
    position = {c.name: i for i, c in enumerate(columns)}
    # a pair unique by chance is likelier than a single column: one member must
    # look like an id, both when the file was not read to its end
    wanted = 1 if whole_file else 2
    pairs = [
        (a, b)
        for a, b in combinations(candidates, 2)
        if a.looks_like_id + b.looks_like_id >= wanted
    ]
    # pairs of two id-like members first, then in column order
    pairs.sort(key=lambda p: -(p[0].looks_like_id + p[1].looks_like_id))
    for a, b in pairs:
        if a.distinct * b.distinct < len(rows):
            continue  # too few combinations to tell every row apart
        i, j = position[a.name], position[b.name]
        if len({(r[i], r[j]) for r in rows}) == len(rows):
            return a.name, b.name
    return None
