"""Keeping credentials out of what lakeforge writes: logs, error messages,
MLflow params and artifacts.

A value counts as a secret when it comes from an environment variable whose
name says so (PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL): the variables a JDBC
source names, the ones a config file references with `${NAME}`, and any such
variable present in the process environment (AWS_SECRET_ACCESS_KEY,
DATABRICKS_TOKEN, MLFLOW_TRACKING_PASSWORD ...). `scrub` replaces every
known secret value in a text with `***`; the log handler and the MLflow
writers pass everything through it. Configs keep secrets out of files by
`${NAME}` references; this module keeps them out of our outputs.
"""

from __future__ import annotations

import logging
import os
import re

_SECRET_NAME = re.compile(r"PASSW(OR)?D|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL|PRIVATE", re.I)
# Shorter values would redact ordinary words and numbers everywhere.
_MIN_LENGTH = 6
_known: set[str] = set()


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def register(value: str | None) -> None:
    """Treat `value` as a secret from now on (an env variable's value read as one)."""
    if value and len(value) >= _MIN_LENGTH:
        _known.add(value)


def register_environment() -> None:
    """Every variable of the process environment whose name says it is a secret."""
    for name, value in os.environ.items():
        if looks_secret(name):
            register(value)


def scrub(text: str) -> str:
    """`text` with every known secret value replaced by `***` (longest first, so a
    secret containing another is replaced whole)."""
    if not _known:
        return text
    for value in sorted(_known, key=len, reverse=True):
        if value in text:
            text = text.replace(value, "***")
    return text


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
