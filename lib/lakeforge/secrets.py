"""Keeping credentials out of what lakeforge writes: logs, error messages,
MLflow params and artifacts.

A value counts as a secret when a config file references it with `${NAME}`
and no default (whatever the name and however short: the file names a
variable to keep the value out of it; `${NAME:-default}` writes a value of
that kind beside it, a location or a setting, unless NAME looks secret),
when a JDBC source names its variable, or when a variable of the process
environment is named like one (PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL:
AWS_SECRET_ACCESS_KEY, DATABRICKS_TOKEN ...; six characters or more).
`scrub` replaces each known value in a text with `***` where it stands as a
whole token (not inside a longer word or number, so a short value does not
mangle ordinary text); the log handler, the error lines and the MLflow
writers pass everything through it, and the JVM's console log does the
same with `java_pattern` (see spark.py). Configs keep secrets out of files
by `${NAME}` references; this module keeps them out of our outputs.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

_SECRET_NAME = re.compile(r"PASSW(OR)?D|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL|PRIVATE", re.I)
_ENVIRONMENT_MIN_LENGTH = 6
# a number is a setting (a port, a cutoff year, a count), never hidden: it
# would blank every version number and count in the logs and lineage
_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d+)?\s*$")
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
# a token ends where a word character does not follow (or precede) it
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def register(value: str | None, force: bool = False) -> None:
    """Treat `value` as a secret from now on (an env variable's value read as
    one). A number is left out, unless `force` (a key that happens to be
    all digits is a secret all the same)."""
    global _pattern
    if not value or not value.strip() or value in _known:
        return
    if _NUMBER.match(value) and not force:
        return
    _known.add(value)
    # longest first, so a secret containing another is replaced whole
    ordered = sorted(_known, key=len, reverse=True)
    _pattern = re.compile("|".join(_token(v) for v in ordered))


def _token(value: str, quote: Callable[[str], str] = re.escape) -> str:
    """A pattern for `value` standing as a token: no word character right
    before a value that starts with one, nor right after one that ends so."""
    before = _EDGE_BEFORE if re.match(r"\w", value[0]) else ""
    after = _EDGE_AFTER if re.match(r"\w", value[-1]) else ""
    return before + quote(value) + after


def java_pattern() -> str:
    """Every known value as one Java regex matching as `scrub` does, for the
    JVM's log layout (a pattern that never matches when none is known). Each
    character but an ASCII letter or digit is written `\\uXXXX`, so no value
    can close the layout's `{...}` option, start a log4j `${...}` lookup or a
    `%` converter, or act as regex syntax."""
    if not _known:
        return "(?!)"
    ordered = sorted(_known, key=len, reverse=True)
    return "|".join(_token(v, _java_literal) for v in ordered)


def _java_literal(value: str) -> str:
    units = value.encode("utf-16-be")
    chars = (int.from_bytes(units[i : i + 2], "big") for i in range(0, len(units), 2))
    return "".join(
        chr(c) if chr(c).isascii() and chr(c).isalnum() else f"\\u{c:04x}" for c in chars
    )


def register_environment() -> None:
    """Every variable of the process environment whose name says it is a
    secret, when its value is long enough to be one: a machine may set
    `SOME_KEY=1`, and no config asked for it, so scrubbing every "1" from the
    logs would help no one."""
    for name, value in os.environ.items():
        if looks_secret(name) and len(value) >= _ENVIRONMENT_MIN_LENGTH:
            register(value)


def scrub_tree(data: object) -> object:
    """`data` (JSON-like) with every string scrubbed, before it is
    serialised: JSON escaping would otherwise hide a secret holding a quote,
    a backslash or a non-ASCII character from `scrub`."""
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {scrub(str(k)): scrub_tree(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [scrub_tree(v) for v in data]
    return data


def scrub(text: str) -> str:
    """`text` with every known secret value standing as a whole token replaced by `***`."""
    if _pattern is None:
        return text
    return _pattern.sub("***", text)


class ScrubFilter(logging.Filter):
    """Renders a record's message once and scrubs it (arguments included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
        return True
