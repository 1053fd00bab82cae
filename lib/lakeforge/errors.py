"""The error types lakeforge raises for bad input, config and state.

Each carries a message meant for a person (what went wrong and where) and the
process exit code of the "Interface" contract. `lakeforge.cli` is the one place
that turns them into a one-line message and an exit code; any other exception
is a bug and keeps its stack trace.
"""

from __future__ import annotations

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException

# What a failed Spark action raises in Python: the raw Java error, or Spark's
# own error class (FAILED_JDBC.CONNECTION, ...) with the Java cause behind it.
SPARK_ERRORS = (Py4JJavaError, CapturedException)


class LakeforgeError(Exception):
    """Base of every expected failure; `exit_code` is what the process returns."""

    exit_code = 1


class ConfigError(LakeforgeError):
    """Bad config file, key, value or command-line argument (exit 2)."""

    exit_code = 2


class InputNotFound(LakeforgeError):
    """The input path or glob names no file, or a folder holds none (exit 2)."""

    exit_code = 2


class SchemaMismatch(LakeforgeError):
    """An input file's columns or types do not match the declared schema (exit 3)."""

    exit_code = 3


class UnreadableInput(LakeforgeError):
    """An input file cannot be decoded: bad compression, truncated archive (exit 3)."""

    exit_code = 3


class NotLearnable(LakeforgeError):
    """The rows cannot train the configured model: a label with one value, a
    class with fewer rows than folds, a feature that is null everywhere, no
    usable feature (exit 3, before any model is fitted)."""

    exit_code = 3


class SetupError(LakeforgeError):
    """The environment is incomplete (Delta jars missing, Maven absent); exit 1."""

    exit_code = 1


class ReconciliationError(LakeforgeError):
    """Row counts do not add up: a row would be lost or doubled (exit 1)."""

    exit_code = 1


class DataQualityFailure(LakeforgeError):
    """A data-quality rule of severity `fail` fired; silver was not changed (exit 4)."""

    exit_code = 4


class UndeclaredPersonalData(LakeforgeError):
    """The ingest-time PII scan found columns that look personal (e-mail,
    phone, card, national id) which the dataset's `privacy:` block does not
    cover, and the block says `undeclared: fail`; nothing reached bronze
    (exit 4, like a failing data-quality rule)."""

    exit_code = 4


class DriftDetected(LakeforgeError):
    """Monitor found drift past the configured threshold: time to retrain."""

    exit_code = 5
