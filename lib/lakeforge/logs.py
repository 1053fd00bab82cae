"""Logging for operators: one line per step, Spark's own noise turned down."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lakeforge import secrets

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str = "INFO") -> None:
    """Send lakeforge logs to stderr once; quiet py4j and friends to WARNING."""
    root = logging.getLogger()
    if not any(getattr(h, "_lakeforge", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
        handler._lakeforge = True  # type: ignore[attr-defined]
        # every line passes through here: no credential value reaches stderr
        handler.addFilter(secrets.ScrubFilter())
        root.addHandler(handler)
    secrets.register_environment()
    root.setLevel(logging.WARNING)
    logging.getLogger("lakeforge").setLevel(level.upper())
    # XGBoost-PySpark: xgboost.spark's per-fit chatter (its workers follow the driver's level)
    for noisy in ("py4j", "pyspark", "urllib3", "alembic", "great_expectations", "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def timed(log: logging.Logger, step: str) -> Iterator[dict[str, object]]:
    """Log `step` once it ends, with the seconds taken and the counts the block
    put in the yielded dict (`stats["rows"] = 12`)."""
    stats: dict[str, object] = {}
    start = time.perf_counter()
    yield stats
    parts = " ".join(f"{k}={v}" for k, v in stats.items())
    log.info("%s: %s (%.1fs)", step, parts, time.perf_counter() - start)
