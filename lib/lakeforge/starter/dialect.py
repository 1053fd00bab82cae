"""A CSV file's delimiter and header, guessed from its first lines (pure functions on text)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence

from lakeforge.starter.infer import MARKERS, infer_type

DELIMITERS = ",;\t|"


def sniff_delimiter(text: str) -> tuple[str, str]:
    """The delimiter among `, ; TAB |` that splits the lines into the most
    fields consistently (csv.Sniffer's guess wins ties), and the quote character."""
    sniffed, quote = "", '"'
    try:
        dialect = csv.Sniffer().sniff(text, delimiters=DELIMITERS)
        sniffed, quote = dialect.delimiter, dialect.quotechar or '"'
    except csv.Error:
        pass
    lines = text.splitlines()[:200]

    def score(delimiter: str) -> tuple[bool, int, float, bool]:
        widths = Counter(len(r) for r in csv.reader(lines, delimiter=delimiter, quotechar=quote))
        width, count = widths.most_common(1)[0] if widths else (1, 0)
        share = count / max(1, sum(widths.values()))
        consistent = share >= 0.9 and width > 1
        return consistent, width if consistent else 0, share, delimiter == sniffed

    best = max(DELIMITERS, key=score)
    return (best if score(best)[0] else sniffed or ","), quote


def first_row_is_header(rows: Sequence[Sequence[str]], sniffed: bool | None) -> bool:
    """True when a typed column's first value does not fit its type (a name
    above numbers); False when every typed column's first value fits; for
    all-text columns, csv.Sniffer's guess (`sniffed`), else True."""
    first, rest = rows[0], rows[1:]
    if not rest:
        return True
    typed = 0
    for j, value in enumerate(first):
        column = [r[j].strip() for r in rest if j < len(r) and r[j].strip() not in MARKERS]
        kind = infer_type(column).type if column else "string"
        if kind == "string" or value.strip() in MARKERS:
            continue
        typed += 1
        if infer_type([*column, value.strip()]).type == "string":
            return True
    return False if typed else (sniffed if sniffed is not None else True)
