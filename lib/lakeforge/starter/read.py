"""Reading the first rows of a raw file without Spark: what `lakeforge init` profiles.

CSV (delimiter, quote character and header found from the file's start), JSON
lines and Parquet, plain or compressed as ingest reads them (`.gz`, `.bz2`,
`.xz`, a `.zip`'s first member). Values come back as the text Spark's reader
would see, so one inference serves every format. Only the first `limit` rows
are read: a big file costs what its first rows cost.
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from itertools import islice
from pathlib import Path, PurePath
from typing import IO, Any

from lakeforge.errors import InputNotFound, UnreadableInput
from lakeforge.ingest.files import _open_text
from lakeforge.starter.dialect import first_row_is_header, sniff_delimiter
from lakeforge.starter.parquet import read_parquet
from lakeforge.starter.sample import BY_SUFFIX, COMPRESSED, SAMPLE_ROWS, CsvDialect, Format, Sample

_SNIFF_CHARS = 1 << 16
_HEADER_ROWS = 500  # rows the header guess looks at
# encoding -> the file's text, decompressed
TextOpener = Callable[[str], AbstractContextManager[IO[str]]]


def read_sample(path: Path, shown: str, limit: int = SAMPLE_ROWS) -> Sample:
    """The first `limit` rows of the file at `path` (`shown` names it in errors).

    Raises InputNotFound (no rows) and UnreadableInput (broken compression,
    not JSON lines, not Parquet), each naming the file.
    """
    if path.suffix.lower() == ".xz":
        # init could read it, but Spark (hadoop) has no xz codec: ingest could not
        raise UnreadableInput(
            f"{shown}: Spark cannot read .xz files; recompress it as .gz or .bz2 first"
        )
    with _reading(shown):
        if path.suffix.lower() == ".zip":
            member = _first_member(path, shown)
            fmt = _format_by_name(member) or _format_by_content(_zip_bytes(path, member))
            if fmt == "parquet":
                with zipfile.ZipFile(path) as archive:
                    return read_parquet(io.BytesIO(archive.read(member)), shown, limit)
            return _read_text(fmt, _zip_opener(path, member), shown, limit)
        fmt = _format_by_name(path.name) or _format_by_content(_head_bytes(path))
        if fmt == "parquet":
            if path.suffix.lower() in COMPRESSED:
                raise UnreadableInput(
                    f"{shown}: Spark reads Parquet files as they are (they compress inside); "
                    "decompress it first"
                )
            return read_parquet(path, shown, limit)
        return _read_text(fmt, lambda encoding: _open_text(path, encoding), shown, limit)


@contextmanager
def _reading(shown: str) -> Iterator[None]:
    try:
        yield
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as exc:
        raise UnreadableInput(f"{shown}: cannot be decompressed or read: {exc}") from exc
    except csv.Error as exc:
        raise UnreadableInput(f"{shown}: not readable as CSV: {exc}") from exc


def _format_by_name(name: str) -> Format | None:
    suffixes = [s.lower() for s in PurePath(name).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    return BY_SUFFIX.get(suffixes[-1]) if suffixes else None


def _format_by_content(head: bytes) -> Format:
    if head.startswith(b"PAR1"):
        return "parquet"
    return "json" if head.lstrip().startswith((b"{", b"[")) else "csv"


def _head_bytes(path: Path) -> bytes:
    with _open_text(path, "ISO-8859-1") as handle:  # a byte per character
        return handle.read(64).encode("ISO-8859-1")


def _first_member(path: Path, shown: str) -> str:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.is_dir() and not PurePath(info.filename).name.startswith(("_", ".")):
                return info.filename
    raise InputNotFound(f"{shown}: zip archive holds no files")


def _zip_bytes(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
        return handle.read(64)


def _zip_opener(path: Path, member: str) -> TextOpener:
    @contextmanager
    def open_member(encoding: str) -> Iterator[IO[str]]:
        with zipfile.ZipFile(path) as archive, archive.open(member) as raw:
            yield io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")

    return open_member


def _read_text(fmt: Format, open_text: TextOpener, shown: str, limit: int) -> Sample:
    with open_text("UTF-8") as handle:
        head = handle.read(_SNIFF_CHARS)
    encoding = "UTF-8"
    if "\ufffd" in head:  # bytes UTF-8 cannot decode: an older single-byte encoding
        encoding = "ISO-8859-1"
        with open_text(encoding) as handle:
            head = handle.read(_SNIFF_CHARS)
    if not head.strip():
        raise InputNotFound(f"{shown}: the file is empty: nothing to profile")
    if fmt == "json":
        return _read_json(open_text, shown, limit)
    if len(head) == _SNIFF_CHARS and "\n" in head:
        head = head[: head.rindex("\n") + 1]  # whole lines only
    delimiter, quote = sniff_delimiter(head.lstrip("\ufeff"))
    with open_text(encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar=quote)
        raw = list(islice((r for r in reader if r), limit + 2))
    review: list[str] = []
    if encoding != "UTF-8":
        review.append("the file is not valid UTF-8: read as ISO-8859-1 (check source.csv.encoding)")
    if raw[0] and raw[0][0].startswith("\ufeff"):
        raw[0][0] = raw[0][0][1:]
        review.append("the file starts with a byte-order mark: check that ingest reads column 1")
    try:
        sniffed: bool | None = csv.Sniffer().has_header(head.lstrip("\ufeff"))
    except csv.Error:
        sniffed = None
    header = first_row_is_header(raw[:_HEADER_ROWS], sniffed)
    if header:
        headers = tuple(h.strip() for h in raw[0])
        data = raw[1:]
    else:
        headers = tuple(f"col_{i}" for i in range(1, len(raw[0]) + 1))
        data = raw
    if not data:
        raise InputNotFound(f"{shown}: a header but no rows: nothing to profile")
    whole_file = len(data) <= limit
    data = data[:limit]
    width = len(headers)
    ragged = sum(1 for r in data if len(r) != width)
    if ragged:
        review.append(
            f"{ragged} row(s) of the sample do not have {width} fields: ingest quarantines them"
        )
    if any("\n" in v or "\r" in v for r in data for v in r):
        review.append("some values span lines: ingest reads a row per line and quarantines them")
    rows = tuple(tuple([*r[:width], *[None] * (width - len(r))]) for r in data)
    return Sample(
        format="csv",
        headers=headers,
        rows=rows,
        whole_file=whole_file,
        csv=CsvDialect(delimiter=delimiter, quote=quote, header=header),
        encoding=encoding,
        review=tuple(review),
    )


def _read_json(open_text: TextOpener, shown: str, limit: int) -> Sample:
    objects: list[dict[str, Any]] = []
    bad = 0
    more = False
    with open_text("UTF-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            if not objects and not bad and line.lstrip().startswith("["):
                raise UnreadableInput(
                    f"{shown}: a JSON array; ingest reads JSON lines (one object per line)"
                )
            if len(objects) + bad >= limit:
                more = True
                break
            try:
                value = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(value, dict):
                objects.append(value)
            else:
                bad += 1
    if not objects:
        raise UnreadableInput(f"{shown}: no line of the first {bad} is a JSON object")
    headers = tuple(dict.fromkeys(k for o in objects for k in o))
    nested = {
        h: "string" for h in headers if any(isinstance(o.get(h), dict | list) for o in objects)
    }
    rows = tuple(tuple(_json_text(o.get(h)) for h in headers) for o in objects)
    review = []
    if bad:
        review.append(f"{bad} line(s) of the sample are not JSON objects: ingest quarantines them")
    return Sample(
        format="json",
        headers=headers,
        rows=rows,
        whole_file=not more,
        types=nested,
        review=tuple(review),
    )


def _json_text(value: object) -> str | None:
    """The text Spark's JSON reader gives a value read into a string column."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)
