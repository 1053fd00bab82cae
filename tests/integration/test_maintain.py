"""`lakeforge maintain` against real Delta VACUUM and a real MLflow registry:
the table version a registered model was trained on stays readable, what no
model pins is deleted, a retention that would break a pin is refused, and an
archived model version pins nothing.

Delta judges age by the clock: VACUUM deletes a file the current version no
longer reads once its modification time, and its removal's time in the log
(`remove.deletionTimestamp`, unless the tombstone was dropped already), are
older than the retention; DESCRIBE HISTORY dates a commit by its JSON file's
modification time. A test cannot wait weeks, so `_age` rewrites the times of
one commit as if it had been written days ago: the timestamps in its JSON,
the JSON file's modification time and those of the data files it added.
Nothing else about the table changes; Delta reads it as a table that old.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from mlflow import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from lakeforge.cli import main
from lakeforge.config.loader import JobConfig
from lakeforge.steps import maintain
from lakeforge.storage import delta
from lakeforge.storage.maintenance import FILE_RETENTION, LOG_RETENTION, properties
from lakeforge.storage.paths import tables_for
from lakeforge.tracking import runs
from tests.helpers import job_config, scores_frame, write_scores_dataset

pytestmark = pytest.mark.integration

DAY = 86_400.0


def _age(table: str, version: int, days: float) -> None:
    """Make commit `version` of `table` look `days` old (see the module docstring)."""
    when = time.time() - days * DAY
    ms = int(when * 1000)
    commit = Path(table) / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines() if line]
    for action in actions:
        if "commitInfo" in action:
            action["commitInfo"]["timestamp"] = ms
        if "add" in action:
            action["add"]["modificationTime"] = ms
            os.utime(Path(table) / unquote(action["add"]["path"]), (when, when))
        if "remove" in action:
            action["remove"]["deletionTimestamp"] = ms
    commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
    # the local file system's checksum of the old content would fail the read
    commit.with_name(f".{commit.name}.crc").unlink(missing_ok=True)
    os.utime(commit, (when, when))


def _forget_cached_logs(spark: SparkSession) -> None:
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]


def _on_disk(table: str) -> set[str]:
    root = Path(table)
    return {
        str(p.relative_to(root))
        for p in root.rglob("*.parquet")
        if "_delta_log" not in p.relative_to(root).parts
    }


def _files_of(spark: SparkSession, table: str, version: int) -> set[str]:
    return {Path(unquote(u)).name for u in delta.read(spark, table, as_of=version).inputFiles()}


def _overwrite(df: DataFrame, table: str) -> None:
    df.repartition(2).write.format("delta").mode("overwrite").save(table)


def _register(spark: SparkSession, cfg: JobConfig, table: str, version: int) -> str:
    """A model version of `scores` whose run read `version` of `table`, recorded
    the way train records it (`runs.log_inputs`); its version number."""
    uri = cfg.settings.mlflow.tracking_uri
    with runs.start(uri, "scores", f"train-scores-silver-v{version}") as run:
        runs.log_inputs(
            delta.read(spark, table, as_of=version), table, version, "scores-silver", {}
        )
    client = MlflowClient(tracking_uri=uri)
    if not client.search_registered_models("name = 'scores'"):
        client.create_registered_model("scores")
    registered = client.create_model_version(
        "scores", f"{run.info.artifact_uri}/model", run.info.run_id
    )
    return str(registered.version)


def test_maintain_keeps_what_a_registered_model_pins_and_deletes_the_rest(
    spark: SparkSession, tmp_path: Path, lakehouse: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_scores_dataset(tmp_path / "conf")
    cfg = job_config(dataset)
    silver = tables_for(cfg.settings, "scores").silver
    rows = scores_frame(spark, 600).cache()
    # silver v0..v4; a registered model version trained on v2
    for where in ["id < 100", "id < 200", "true", "id < 300", "id < 250"]:
        _overwrite(rows.where(where), silver)
    assert _register(spark, cfg, silver, 2) == "1"
    counts = {v: delta.read(spark, silver, as_of=v).count() for v in range(5)}
    files = {v: _files_of(spark, silver, v) for v in range(5)}
    only_v0 = files[0] - files[1]
    before = _on_disk(silver)
    assert files[2] <= before and only_v0 and only_v0 <= before
    for version, days in [(0, 100), (1, 60), (2, 30), (3, 20)]:  # v4 is today's
        _age(silver, version, days)
    _forget_cached_logs(spark)

    # (b) a retention that would delete v2's files (30 days old) is refused,
    # naming the table, the model and the version; no table changes at all
    refused = main(["maintain", "--dataset", str(dataset), "--retain-hours", "200"])
    assert refused == 2
    message = capsys.readouterr().err
    assert "scores/silver version 2, which model scores v1 pins" in message
    assert "keep at least 722 h" in message  # 30 days, rounded up, + 1 h of margin
    assert _on_disk(silver) == before
    assert delta.version(spark, silver) == 4
    assert FILE_RETENTION not in properties(spark, silver)

    # (a) the default keeps v2 (and what is newer) and deletes what only v0 read
    done = maintain.run(spark, cfg)
    after = _on_disk(silver)
    assert files[1] | files[2] | files[3] | files[4] <= after
    assert not only_v0 & after  # deleted: no registered model read v0
    # v2 reads back: its files are there, and Delta (which refuses time travel
    # past the table's delta.deletedFileRetentionDuration) allows it
    assert delta.read(spark, silver, as_of=2).count() == counts[2]
    assert delta.read(spark, silver, as_of=4).count() == counts[4]
    assert [u.table for u in done] == [silver]
    upkeep = done[0]
    assert upkeep.deleted == len(only_v0)
    assert {(p.model, p.model_version, p.version) for p in upkeep.pins} == {("scores", "1", 2)}
    # 30 days + 1 h of margin + 1 week of grace, in whole days, set on the table
    assert upkeep.retention.vacuum_hours == upkeep.retention.log_hours == 38 * 24
    props = properties(spark, silver)
    assert props[FILE_RETENTION] == props[LOG_RETENTION] == f"interval {38 * 24} hours"

    # (c) once its only model version is archived, v2 is pinned no more
    MlflowClient().set_model_version_tag("scores", "1", "archived", "true")
    done = maintain.run(spark, cfg)
    assert not files[2] & _on_disk(silver)  # removed 20 days ago: deleted
    assert files[3] <= _on_disk(silver)  # removed today: kept
    assert delta.read(spark, silver, as_of=4).count() == counts[4]
    assert done[0].pins == ()
    assert done[0].retention.vacuum_hours == 168
    assert properties(spark, silver)[FILE_RETENTION] == "interval 168 hours"


def test_a_pin_survives_even_when_delta_has_dropped_the_tombstones_of_its_files(
    spark: SparkSession, tmp_path: Path, lakehouse: Path
) -> None:
    """A version that still reads a file written long before it: once a
    checkpoint has dropped that file's tombstone (older than Delta's 7 days),
    only the file's own age keeps VACUUM off it, so the retention must cover
    the oldest file, not only the pinned commit."""
    cfg = job_config(write_scores_dataset(tmp_path / "conf"))
    silver = tables_for(cfg.settings, "scores").silver
    rows = scores_frame(spark, 300).cache()
    _overwrite(rows.where("id < 100"), silver)  # v0: A
    rows.where("id >= 100 AND id < 200").write.format("delta").mode("append").save(silver)  # v1
    _overwrite(rows, silver)  # v2 removes A and B
    _register(spark, cfg, silver, 1)
    pinned = _files_of(spark, silver, 1)
    for version, days in [(0, 90), (1, 40), (2, 30)]:
        _age(silver, version, days)
    _forget_cached_logs(spark)
    for _ in range(8):  # v3..v10: Delta writes a checkpoint at v10, without old tombstones
        rows.limit(1).write.format("delta").mode("append").save(silver)
    assert (Path(silver) / "_delta_log" / f"{10:020d}.checkpoint.parquet").exists()

    done = maintain.run(spark, cfg)

    assert pinned <= _on_disk(silver)
    assert delta.read(spark, silver, as_of=1).count() == 200
    assert done[0].deleted == 0  # every file under the table is one v1 or today's reads
    assert done[0].retention.minimum_hours == 90 * 24 + 2  # rounded up, + 1 h of margin
