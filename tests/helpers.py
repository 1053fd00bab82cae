"""Helpers that write small dataset configs and raw files into a test's folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from lakeforge.config import load_job_config
from lakeforge.config.loader import JobConfig

TRIPS_COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "carrier", "type": "string"},
    {"name": "delay", "type": "double"},
    {"name": "day", "type": "date", "format": "yyyy-MM-dd"},
]
TRIPS_HEADER = "id,carrier,delay,day"


def write_dataset(
    conf_dir: Path,
    source_path: Path | str,
    *,
    fmt: str = "csv",
    columns: list[dict[str, str]] | None = None,
    csv: dict[str, object] | None = None,
    name: str = "trips",
    extra: dict[str, object] | None = None,
) -> Path:
    """Write conf/datasets/NAME.yaml and return its path."""
    source: dict[str, object] = {
        "format": fmt,
        "path": str(source_path),
        "columns": columns or TRIPS_COLUMNS,
    }
    if csv is not None:
        source["csv"] = csv
    path = conf_dir / "datasets" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"name": name, "source": source, "keys": ["id"], **(extra or {})})
    )
    return path


def job_config(dataset_file: Path) -> JobConfig:
    return load_job_config(dataset_file, "local")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path
