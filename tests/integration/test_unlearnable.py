"""What the engine cannot learn is said, not crashed: one line naming the
cause and the key to change, exit 3, before any model is fitted (no MLflow
run); an unexpected failure is one line too, its traceback in a log file."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakeforge.cli import main
from lakeforge.config.training import TrainConfig
from lakeforge.errors import NotLearnable
from lakeforge.split.assign import SPLIT, TRAIN, assign
from lakeforge.steps import train
from lakeforge.storage import delta
from lakeforge.storage.paths import tables_for
from tests.helpers import job_config, scores_frame, train_section, write_scores_dataset

pytestmark = pytest.mark.integration


def _silver(spark: SparkSession, cfg_path: Path, rows: DataFrame) -> None:
    cfg = job_config(cfg_path)
    delta.append(rows, tables_for(cfg.settings, "scores").silver)


def _no_runs() -> bool:
    experiment = mlflow.get_experiment_by_name("scores")
    return experiment is None or mlflow.search_runs([experiment.experiment_id]).empty


def _train_ids(spark: SparkSession, section: dict[str, object], n: int) -> list[int]:
    spec = TrainConfig.model_validate(section)
    rows = assign(scores_frame(spark), ["id"], spec.split, spec.label)
    return [r["id"] for r in rows.where(F.col(SPLIT) == TRAIN).orderBy("id").limit(n).collect()]


def test_a_class_with_fewer_train_rows_than_folds_exits_3_naming_class_and_key(
    spark: SparkSession, tmp_path: Path, lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scores_dataset(tmp_path / "conf", task="multiclass")
    rare = _train_ids(spark, train_section(task="multiclass"), 2)
    rows = scores_frame(spark).withColumn(
        "y", F.when(F.col("id").isin(rare), F.lit(2)).otherwise(F.col("y"))
    )
    _silver(spark, path, rows)
    capsys.readouterr()
    assert main(["train", "--dataset", str(path)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    last = err[-1]
    assert last.startswith("lakeforge train: error: scores: train.label 'y': class 2 has 2 row(s)")
    assert "train.split.folds (3)" in last
    assert not any("Traceback" in line for line in err)
    assert _no_runs()


def test_a_label_with_one_value_is_refused_before_any_fit(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    path = write_scores_dataset(tmp_path / "conf", where="y = 1")
    _silver(spark, path, scores_frame(spark, 800))
    with pytest.raises(NotLearnable, match=r"train.label 'y' has one value \(1\)"):
        train.run(spark, job_config(path))
    assert _no_runs()


def test_a_feature_that_is_null_everywhere_is_named_with_its_key(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    path = write_scores_dataset(tmp_path / "conf")
    _silver(spark, path, scores_frame(spark, 800).withColumn("noise", F.lit(None).cast("double")))
    with pytest.raises(
        NotLearnable, match=r"'noise' \(train.features.numeric.columns\) are null in every"
    ):
        train.run(spark, job_config(path))
    assert _no_runs()


def test_no_feature_that_varies_is_no_usable_feature(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    path = write_scores_dataset(
        tmp_path / "conf",
        features={"numeric": {"columns": ["x2"]}, "categorical": {"columns": ["segment"]}},
    )
    rows = scores_frame(spark, 800).withColumn("x2", F.lit(1.0)).withColumn("segment", F.lit("a"))
    _silver(spark, path, rows)
    with pytest.raises(NotLearnable, match="no usable feature"):
        train.run(spark, job_config(path))


def test_an_unexpected_failure_is_one_line_and_its_traceback_goes_to_a_log_file(
    spark: SparkSession, tmp_path: Path, lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scores_dataset(tmp_path / "conf")
    _silver(spark, path, scores_frame(spark, 200))
    # a damaged commit: Delta cannot read the table's log
    commit = lakehouse / "scores" / "silver" / "_delta_log" / "00000000000000000000.json"
    commit.write_text("{not json\n")
    capsys.readouterr()
    assert main(["train", "--dataset", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err)
    last = err[-1]
    assert last.startswith("lakeforge train: error: ")
    assert "the traceback is in " in last
    report = Path(last.split("the traceback is in ")[1].split(",")[0])
    assert report.parent == lakehouse / "_logs"
    assert "Traceback (most recent call last)" in report.read_text()

    assert main(["train", "--dataset", str(path), "--debug"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err
