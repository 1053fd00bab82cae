"""Helpers that write small dataset configs and raw files into a test's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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
    source_extra: dict[str, object] | None = None,
) -> Path:
    """Write conf/datasets/NAME.yaml and return its path."""
    source: dict[str, object] = {
        "format": fmt,
        "path": str(source_path),
        "columns": columns or TRIPS_COLUMNS,
        **(source_extra or {}),
    }
    if csv is not None:
        source["csv"] = csv
    path = conf_dir / "datasets" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = conf_dir / "base.yaml"
    if not base.exists():
        # test inputs live in the test's folder, beside (not in) its lakehouse
        base.write_text("allow_external_paths: true\n")
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


SCORES_COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"},
    {"name": "noise", "type": "double"},
    {"name": "segment", "type": "string"},
    {"name": "y", "type": "int"},
]


def train_section(**changes: object) -> dict[str, object]:
    """A small binary training config over SCORES_COLUMNS; `changes` replace keys."""
    section: dict[str, object] = {
        "task": "binary",
        "label": "y",
        "features": {
            "numeric": {"columns": ["x1", "x2", "noise"], "impute": "median"},
            "categorical": {"columns": ["segment"]},
        },
        "split": {"validation": 0.1, "test": 0.25, "folds": 3, "seed": 1},
        "models": [{"estimator": "logistic_regression", "grid": {"regParam": [0.0, 0.1]}}],
    }
    section.update(changes)
    return section


def write_scores_dataset(conf_dir: Path, **train_changes: object) -> Path:
    """A dataset config `scores` (keys: id) with a `train` section."""
    return write_dataset(
        conf_dir,
        conf_dir / "unused.csv",
        columns=SCORES_COLUMNS,
        name="scores",
        extra={"train": train_section(**train_changes)},
    )


def scores_frame(spark: SparkSession, n: int = 6000) -> DataFrame:
    """Rows whose label follows a known logistic model of x1, x2 and segment."""
    rng = np.random.default_rng(20261124)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int32),
            "x1": rng.normal(0, 1, n),
            "x2": rng.normal(0, 2, n),
            "noise": rng.normal(0, 1, n),
            "segment": rng.choice(["north", "south", "east", "west"], n),
        }
    )
    effect = frame["segment"].map({"north": 0.8, "south": -0.5, "east": 0.0, "west": 0.3})
    logit = 1.2 * frame["x1"] - 0.6 * frame["x2"] + effect
    frame["y"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    frame.loc[rng.random(n) < 0.03, "x1"] = np.nan  # a few missing values to impute
    df = spark.createDataFrame(frame)
    return df.withColumn("x1", F.when(F.isnan("x1"), None).otherwise(F.col("x1")))


def with_predict_where(cfg: JobConfig, where: str) -> JobConfig:
    """`cfg` scoring the silver rows of `where` (a batch of its own)."""
    ds = cfg.dataset.model_copy(
        update={"predict": cfg.dataset.predict.model_copy(update={"where": where})}
    )
    return JobConfig(cfg.settings, ds, cfg.env, cfg.files)
