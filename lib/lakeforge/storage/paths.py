"""Table locations: one rule for every dataset and step.

Tables of dataset NAME live at ROOT/NAME/<table>, ROOT being the lakehouse
(`./lakehouse` by default; `LAKEFORGE_LAKEHOUSE` or the config override it).
A local root is made absolute so Spark executors and the driver agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config loader uses this module: no import cycle at run time
    from lakeforge.config.models import Settings

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """True for `s3a://…`, `file:///…`, `dbfs:/…` style locations."""
    return bool(_URI.match(path)) or path.startswith("dbfs:")


def lakehouse_root(settings: Settings) -> str:
    root = settings.lakehouse.rstrip("/")
    return root if is_uri(root) else str(Path(root).expanduser().resolve())


@dataclass(frozen=True)
class Tables:
    """The Delta table locations of one dataset."""

    root: str
    dataset: str

    def _at(self, name: str) -> str:
        return f"{self.root}/{self.dataset}/{name}"

    @property
    def bronze(self) -> str:
        return self._at("bronze")

    @property
    def bronze_quarantine(self) -> str:
        return self._at("bronze_quarantine")

    @property
    def silver(self) -> str:
        return self._at("silver")

    @property
    def silver_quarantine(self) -> str:
        return self._at("silver_quarantine")

    @property
    def predictions(self) -> str:
        return self._at("predictions")

    @property
    def online_predictions(self) -> str:
        """What `lakeforge serve` answered: the requests' inputs, the answers
        and gold's lineage columns, appended off the request path."""
        return self._at("online_predictions")

    @property
    def splits(self) -> str:
        """Which split and fold each labelled row was in for the latest train
        run (earlier runs: the table version logged in each run's params)."""
        return self._at("splits")

    @property
    def monitoring(self) -> str:
        return self._at("monitoring")

    @property
    def ingest_log(self) -> str:
        """Which files were ingested in which batch (what makes re-runs no-ops)."""
        return self._at("_ingest_log")

    @property
    def jdbc_log(self) -> str:
        """Which watermark window of a database source each batch read."""
        return self._at("_jdbc_log")

    @property
    def clean_log(self) -> str:
        """Which bronze batches were cleaned into silver, with the counts."""
        return self._at("_clean_log")

    @property
    def forget_audit(self) -> str:
        """Who erased how many rows of a subject from which table when
        (`lakeforge forget`), never the subject's values."""
        return self._at("_forget_audit")

    @property
    def quality(self) -> str:
        """Great Expectations results (JSON) and Data Docs (HTML)."""
        return self._at("_quality")

    @property
    def reports(self) -> str:
        """Run reports of the pipeline (markdown + plots)."""
        return self._at("_reports")

    @property
    def staging(self) -> str:
        """Scratch space: members extracted from zip archives."""
        return self._at("_staging")


def tables_for(settings: Settings, dataset: str) -> Tables:
    return Tables(root=lakehouse_root(settings), dataset=dataset)
