"""Finding input files, identifying them, and making them readable by Spark.

Files are listed through Hadoop's FileSystem (so `s3a://`, `abfss://`, `gs://`
and local paths work alike). Each file is identified by path, size and a
checksum (sha256 of the bytes for local files, the modification time for
remote ones), which is how a re-run knows a file was already ingested.
Zip archives, which Spark cannot read, are extracted into the dataset's
staging folder first (local archives only).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import lzma
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from pyspark.sql import SparkSession

from lakeforge.errors import ConfigError, InputNotFound, SchemaMismatch, UnreadableInput
from lakeforge.hashing import sha256_of
from lakeforge.storage.paths import is_uri

_SKIP_PREFIXES = ("_", ".")  # _SUCCESS, .crc, hidden files


@dataclass(frozen=True)
class InputFile:
    """One raw file as found: its identity (path, size, checksum) and where Spark reads it.

    For a zip member, `path` is `archive.zip!/member` and `readable` the extracted copy.
    """

    path: str
    size: int
    checksum: str
    readable: str

    @property
    def is_local(self) -> bool:
        return self.readable.startswith("file:")


def resolve_source_path(path: str) -> str:
    """Expand `pkg://PACKAGE/rel/path` to the file inside an installed package.

    The package is located without importing it (find_spec), since data-only
    packages may not import cleanly.
    """
    if not path.startswith("pkg://"):
        return path
    package, _, rel = path[len("pkg://") :].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputNotFound(f"{path}: Python package {package!r} is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / rel)


def list_files(spark: SparkSession, path: str) -> list[tuple[str, int, int]]:
    """(uri, size, modification ms) of every file at a path, folder or glob, sorted.

    Raises InputNotFound when the path does not exist or holds no file.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jsc = spark.sparkContext._jsc
    assert jsc is not None
    hadoop_conf = jsc.hadoopConfiguration()
    location = path if is_uri(path) else str(Path(path).expanduser().resolve())
    hpath = jvm.org.apache.hadoop.fs.Path(location)
    fs = hpath.getFileSystem(hadoop_conf)
    statuses = fs.globStatus(hpath)
    if statuses is None or len(statuses) == 0:
        raise InputNotFound(f"input {path}: no such file or directory")
    found: list[tuple[str, int, int]] = []
    for status in statuses:
        children = fs.listStatus(status.getPath()) if status.isDirectory() else [status]
        for child in children:
            name = child.getPath().getName()
            if child.isDirectory() or name.startswith(_SKIP_PREFIXES):
                continue
            found.append((child.getPath().toString(), child.getLen(), child.getModificationTime()))
    if not found:
        raise InputNotFound(f"input {path}: folder holds no files")
    return sorted(found)


def local_path(uri: str) -> Path:
    """`file:/a/b` → Path('/a/b')."""
    return Path("/" + uri[len("file:") :].lstrip("/"))


def identify(listed: Iterable[tuple[str, int, int]], staging: str) -> list[InputFile]:
    """Checksum each listed file and expand zip archives into staged members."""
    files: list[InputFile] = []
    for uri, size, modified in listed:
        is_local = uri.startswith("file:")
        checksum = sha256_of(local_path(uri)) if is_local else f"mtime:{modified}"
        if uri.lower().endswith(".zip"):
            files.extend(_extract_zip(uri, size, checksum, staging))
        else:
            files.append(InputFile(path=uri, size=size, checksum=checksum, readable=uri))
    return files


def _extract_zip(uri: str, size: int, checksum: str, staging: str) -> list[InputFile]:
    if not uri.startswith("file:") or (is_uri(staging) and not staging.startswith("file:")):
        raise UnreadableInput(
            f"{uri}: zip archives are read from local paths only; use .gz or .bz2 on object stores"
        )
    target = Path(staging) / checksum[:16]
    members: list[InputFile] = []
    try:
        with zipfile.ZipFile(local_path(uri)) as archive:
            for info in archive.infolist():
                if info.is_dir() or Path(info.filename).name.startswith(_SKIP_PREFIXES):
                    continue
                out = target / info.filename
                if not out.is_file() or out.stat().st_size != info.file_size:
                    out.parent.mkdir(parents=True, exist_ok=True)
                    tmp = out.with_suffix(out.suffix + ".part")
                    with archive.open(info) as src, tmp.open("wb") as dst:
                        while block := src.read(1 << 20):
                            dst.write(block)
                    tmp.replace(out)
                members.append(
                    InputFile(
                        path=f"{uri}!/{info.filename}",
                        size=size,
                        checksum=f"{checksum}:{info.CRC:08x}",
                        readable=f"file:{out}",
                    )
                )
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise UnreadableInput(f"{uri}: cannot be read as a zip archive: {exc}") from exc
    if not members:
        raise InputNotFound(f"{uri}: zip archive holds no files")
    return members


def remove_extracts(found: Iterable[InputFile], staging: str) -> None:
    """Delete the staged copies of the zip members in `found` (each
    archive's folder under `staging`): once their batch is committed the
    raw file's copy is not the lakehouse's to keep (it may hold personal data
    in clear). A later run, or a resumed batch, extracts them again."""
    root = Path(staging).resolve()  # where _extract_zip writes
    for f in found:
        if "!/" not in f.path or not f.is_local:
            continue
        folder = root / f.checksum.split(":", 1)[0][:16]
        if folder.is_dir() and local_path(f.readable).is_relative_to(folder):
            shutil.rmtree(folder, ignore_errors=True)


_OPENERS: dict[str, Callable[[Path], BinaryIO]] = {
    ".gz": lambda p: cast(BinaryIO, gzip.GzipFile(p, "rb")),
    ".bz2": lambda p: cast(BinaryIO, bz2.BZ2File(p, "rb")),
    ".xz": lambda p: cast(BinaryIO, lzma.LZMAFile(p, "rb")),  # noqa: SIM115
}


def _open_text(path: Path, encoding: str) -> IO[str]:
    """A text reader that decompresses by file suffix, as Hadoop's codecs do."""
    opener = _OPENERS.get(path.suffix.lower(), lambda p: p.open("rb"))
    return io.TextIOWrapper(opener(path), encoding=encoding, errors="replace", newline="")


def check_csv_header(
    file: InputFile,
    expected: list[str],
    delimiter: str,
    quote: str,
    encoding: str,
    evolve: bool = False,
    first_line: str | None = None,
    private: bool = False,
) -> list[str] | None:
    """Compare a CSV file's header with the schema's column names; return the
    header (None for an empty file, or a remote one when `first_line` is not given).

    Spark's own check only runs inside a task; this one runs on the driver
    first, so the error names the file and the column plainly. It also finds a
    file whose compression is broken at the start. A remote file's header is
    checked when the caller read its `first_line`; otherwise it is left to Spark
    (`enforceSchema=false`). With `evolve`, columns the schema does not name
    are accepted (they go to bronze as text) and columns are matched by name;
    a declared column missing from the file is refused either way, since it
    would be read as nulls. With `private` (the dataset has a privacy block)
    the error never quotes a name the file holds, only counts and positions:
    a file without a header line would have its first row's values there.
    """
    if first_line is not None:
        first = next(csv.reader([first_line], delimiter=delimiter, quotechar=quote), None)
    elif not file.is_local:
        return None
    else:
        path = local_path(file.readable)
        try:
            with _open_text(path, encoding) as handle:
                first = next(csv.reader(handle, delimiter=delimiter, quotechar=quote), None)
        except (OSError, EOFError, gzip.BadGzipFile, lzma.LZMAError, ValueError) as exc:
            raise UnreadableInput(f"{file.path}: cannot be decompressed or read: {exc}") from exc
        except csv.Error as exc:
            raise SchemaMismatch(f"{file.path}: header line is not valid CSV: {exc}") from exc
    if first is None:
        return None  # an empty file has no rows to mismatch
    # a UTF-8 byte-order mark before the first name is not part of it (Spark
    # drops it too)
    header = [h.strip() for h in first]
    if header:
        header[0] = header[0].removeprefix("\ufeff").strip()
    if header == expected:
        return header
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected]
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        what = f"{len(doubled)} name(s)" if private else f"column(s) {', '.join(doubled)}"
        raise SchemaMismatch(f"{file.path}: header names {what} twice")
    if evolve and not missing:
        return header
    if missing or extra:
        detail = "; ".join(
            part
            for part in (
                f"missing column(s) {', '.join(missing)}" if missing else "",
                _unexpected(header, extra, private) if extra else "",
            )
            if part
        )
        if missing and evolve:
            detail += (
                " (schema_drift: evolve adds new columns; a missing one is never read as nulls)"
            )
        elif extra and not missing:
            detail += " (source.schema_drift: evolve would add them to bronze)"
    else:
        pos = next(i for i, (h, e) in enumerate(zip(header, expected, strict=True)) if h != e)
        found = (
            f"column {expected.index(header[pos]) + 1} of the schema"
            if private
            else (repr(header[pos]))
        )
        detail = (
            f"columns in a different order: position {pos + 1} is {found}, "
            f"schema says {expected[pos]!r}"
        )
    raise SchemaMismatch(f"{file.path}: header does not match the schema: {detail}")


def _unexpected(header: list[str], extra: list[str], private: bool) -> str:
    if not private:
        return f"unexpected column(s) {', '.join(extra)}"
    positions = [str(i + 1) for i, h in enumerate(header) if h in extra]
    return (
        f"{len(extra)} unexpected column(s) at position(s) {', '.join(positions)} "
        "(names withheld: privacy is on, and a file without a header line would "
        "show its first row there)"
    )


def check_encoding(encoding: str) -> None:
    """Fail early (ConfigError) on an encoding name Python does not know."""
    try:
        "".encode(encoding)
    except LookupError as exc:
        raise ConfigError(f"source.csv.encoding: unknown encoding {encoding!r}") from exc
