"""Typed, validated configuration (see models for what a file may say)."""

from lakeforge.config.loader import JobConfig, load_dataset, load_job_config, load_settings
from lakeforge.config.models import (
    Column,
    CsvOptions,
    DatasetConfig,
    MlflowSettings,
    Settings,
    Source,
    SparkSettings,
)

__all__ = [
    "Column",
    "CsvOptions",
    "DatasetConfig",
    "JobConfig",
    "MlflowSettings",
    "Settings",
    "Source",
    "SparkSettings",
    "load_dataset",
    "load_job_config",
    "load_settings",
]
