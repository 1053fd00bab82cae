"""A file without a key: identical rows are distinct observations and all
reach silver; each batch is appended exactly once; every row has a stable
`_row_id` from its lineage, so the split is the same on every run and as data
grows, and gold rows point back to silver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakeforge.config import load_job_config
from lakeforge.config.loader import JobConfig
from lakeforge.steps import clean, ingest, predict, train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import write_lines

pytestmark = pytest.mark.integration


def _survey_lines(n: int, seed: int) -> list[str]:
    """People described by three coarse answers: most rows repeat another row."""
    rng = np.random.default_rng(seed)
    lines = ["region,age_band,hours,answer"]
    for _ in range(n):
        region = rng.choice(["north", "south", "east"])
        band = int(rng.integers(1, 4))
        hours = float(rng.choice([10.0, 20.0, 40.0]))
        logit = 0.9 * band - 2.0 + (0.8 if region == "north" else 0.0) + 0.02 * hours
        answer = int(rng.random() < 1 / (1 + np.exp(-logit)))
        lines.append(f"{region},{band},{hours},{answer}")
    lines.append("west,2,not-a-number,1")  # does not parse: bronze quarantine
    lines.append("west,2,,1")  # no hours: silver quarantine (rule hours_known)
    return lines


def _config(conf: Path, landing: Path) -> JobConfig:
    conf.joinpath("datasets").mkdir(parents=True, exist_ok=True)
    conf.joinpath("base.yaml").write_text("allow_external_paths: true\n")
    dataset = {
        "name": "survey",
        "source": {
            "format": "csv",
            "path": str(landing),
            "columns": [
                {"name": "region", "type": "string"},
                {"name": "age_band", "type": "int"},
                {"name": "hours", "type": "double"},
                {"name": "answer", "type": "int"},
            ],
        },
        # no keys: one row per person, and people share every recorded value
        "rules": [{"name": "hours_known", "type": "not_null", "column": "hours"}],
        "train": {
            "task": "binary",
            "label": "answer",
            "features": {
                "numeric": {"columns": ["hours", "age_band"]},
                "categorical": {"columns": ["region"]},
            },
            "split": {"validation": 0.1, "test": 0.25, "folds": 3, "seed": 3},
            "models": [{"estimator": "logistic_regression", "params": {"regParam": 0.01}}],
        },
    }
    path = conf / "datasets" / "survey.yaml"
    path.write_text(yaml.safe_dump(dataset))
    return load_job_config(path)


def test_identical_rows_are_all_kept_once_each_with_stable_ids(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    landing = tmp_path / "landing"
    lines = _survey_lines(600, seed=1)
    write_lines(landing / "part-1.csv", lines)
    cfg = _config(tmp_path / "conf", landing)
    tables = tables_for(cfg.settings, "survey")

    ingested = ingest.run(spark, cfg)
    cleaned = clean.run(spark, cfg)
    silver = delta.read(spark, tables.silver, as_of=delta.version(spark, tables.silver))
    bronze_rows = delta.read(spark, tables.bronze).count()
    bronze_bad = delta.read(spark, tables.bronze_quarantine).count()
    silver_bad = delta.read(spark, tables.silver_quarantine).count()
    # every data line of the file is in exactly one table
    assert bronze_rows + bronze_bad == len(lines) - 1 == ingested.rows_read
    assert (bronze_bad, silver_bad) == (1, 1)
    assert silver.count() + silver_bad == bronze_rows == cleaned.bronze_rows
    assert silver.count() == cleaned.inserted
    # nothing was "deduplicated": the file repeats rows and silver repeats them too
    values = ["region", "age_band", "hours", "answer"]
    distinct_values = silver.select(*values).distinct().count()
    assert distinct_values < silver.count() / 5
    assert silver.select("_row_id").distinct().count() == silver.count()
    assert silver.where(F.col("_row_id").isNull()).isEmpty()

    # A re-clean of the same batch (as after a crash before the clean log was
    # written) appends nothing: silver keeps one copy of the batch.
    version = delta.version(spark, tables.silver)
    again = clean.run(spark, cfg, batch_id=cleaned.batches[0])
    assert again.inserted == silver.count()
    assert delta.read(spark, tables.silver).count() == silver.count()
    assert delta.version(spark, tables.silver) == version

    # The same file read again from scratch gives the same ids, and a later
    # file leaves the first file's ids alone.
    first_ids = {r[0] for r in silver.select("_row_id").collect()}
    write_lines(landing / "part-2.csv", _survey_lines(200, seed=2))
    ingest.run(spark, cfg)
    clean.run(spark, cfg)
    grown = delta.read(spark, tables.silver)
    assert grown.count() == silver.count() + 200
    assert first_ids <= {r[0] for r in grown.select("_row_id").collect()}

    # The first file delivered again under another name: its rows are the
    # same observations, so they go to the quarantine, not into silver twice.
    write_lines(landing / "part-1-again.csv", lines)
    ingest.run(spark, cfg)
    again_clean = clean.run(spark, cfg)
    assert again_clean.rule_counts is not None
    assert again_clean.rule_counts["already_in_silver"] == 600
    assert delta.read(spark, tables.silver).count() == silver.count() + 200
    redelivered = delta.read(spark, tables.silver_quarantine).where(
        F.array_contains("_failed_rules", "already_in_silver")
    )
    assert redelivered.count() == 600

    # Two copies of one new file in the same batch: one copy's rows reach
    # silver, the other's are quarantined as the same observations.
    copy = _survey_lines(50, seed=9)[:-2]  # good lines only
    write_lines(landing / "copy-a.csv", copy)
    write_lines(landing / "copy-b.csv", copy)
    before = delta.read(spark, tables.silver).count()
    ingest.run(spark, cfg)
    both = clean.run(spark, cfg)
    assert both.rule_counts is not None and both.rule_counts["already_in_silver"] == 50
    assert delta.read(spark, tables.silver).count() == before + 50

    other = tmp_path / "again"
    write_lines(other / "part-1.csv", lines)
    fresh_cfg = _config(tmp_path / "conf2", other)
    # a second lakehouse beside the first, same file content
    fresh_root = tmp_path / "lakehouse2"
    fresh_cfg = JobConfig(
        fresh_cfg.settings.model_copy(update={"lakehouse": str(fresh_root)}),
        fresh_cfg.dataset,
        fresh_cfg.env,
        fresh_cfg.files,
    )
    fresh_tables = tables_for(fresh_cfg.settings, "survey")
    ingest.run(spark, fresh_cfg)
    clean.run(spark, fresh_cfg)
    fresh_ids = {r[0] for r in delta.read(spark, fresh_tables.silver).select("_row_id").collect()}
    assert fresh_ids == first_ids


def test_a_keyless_dataset_trains_and_gold_rows_point_back_to_silver(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    landing = tmp_path / "landing"
    write_lines(landing / "part-1.csv", _survey_lines(1500, seed=4))
    cfg = _config(tmp_path / "conf", landing)
    tables = tables_for(cfg.settings, "survey")
    ingest.run(spark, cfg)
    clean.run(spark, cfg)
    trained = train.run(spark, cfg)
    assert trained is not None
    assert sum(trained.split_counts.values()) == delta.read(spark, tables.silver).count()
    assert trained.test_metrics["roc_auc"] > 0.6
    scored = predict.run(spark, cfg, batch_id="all")
    gold = delta.read(spark, tables.predictions)
    silver = delta.read(spark, tables.silver)
    assert scored.rows == silver.count() == gold.count()
    assert gold.join(silver, "_row_id", "left_anti").isEmpty()
    assert gold.select("_row_id").distinct().count() == gold.count()
