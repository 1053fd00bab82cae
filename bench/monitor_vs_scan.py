"""Benchmark: `lakeforge monitor` on a scored batch vs. one plain scan of it.

Side by side in one process: (a) the floor, a plain scan of the batch: the
silver version it was scored from, filtered to its rows (`predict.where`),
the model's inputs and label, and one aggregation (count, min and max of
every column) in one job; (b) monitor's own measurement of the same batch,
`monitor.run` as `lakeforge monitor` calls it, into a fresh monitoring table
each time so that nothing is taken as already measured. Prints the best of
`--repeat` seconds and the Spark jobs of each, the ratio, and where monitor's
time went (seconds and jobs per phase of its best run).

Needs the demo's tables and champion (run scripts/demo.sh first). The
monitor runs it logs to MLflow are deleted afterwards; the demo's monitoring
table is left alone.

    .venv/bin/python bench/monitor_vs_scan.py [--repeat 3] [--batch-id ID]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class Jobs:
    """Spark jobs launched from this thread, counted by job group (the status
    tracker lists a group's jobs; no marker jobs that would cost time)."""

    def __init__(self, spark: Any) -> None:
        self.sc = spark.sparkContext
        self.serial = 0

    @contextmanager
    def group(self, name: str) -> Iterator[Callable[[], int]]:
        self.serial += 1
        group = f"bench-{name}-{self.serial}"
        previous = self.sc.getLocalProperty("spark.jobGroup.id")
        self.sc.setJobGroup(group, name)
        try:
            yield lambda: len(self.sc.statusTracker().getJobIdsForGroup(group))
        finally:
            if previous:
                self.sc.setJobGroup(previous, previous)
            else:
                self.sc.setLocalProperty("spark.jobGroup.id", None)


class Phases:
    """Seconds and Spark jobs per phase of one monitor run: functions monitor
    calls are wrapped in place (flat: a phase inside another is not wrapped)."""

    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.seen: dict[str, list[float]] = {}

    def wrap(self, owner: Any, attribute: str, phase: str) -> None:
        original = getattr(owner, attribute)

        @wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            with self.jobs.group(phase) as count:
                try:
                    return original(*args, **kwargs)
                finally:
                    spent = self.seen.setdefault(phase, [0.0, 0.0])
                    spent[0] += time.perf_counter() - start
                    spent[1] += count()

        setattr(owner, attribute, timed)

    def reset(self) -> dict[str, list[float]]:
        seen, self.seen = self.seen, {}
        return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(REPO / "conf/datasets/flights.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-id", default=None, help="default: the latest scored batch")
    args = parser.parse_args()

    import mlflow
    from mlflow import MlflowClient
    from pyspark.sql import functions as F

    from lakeforge.config import load_job_config
    from lakeforge.logs import configure
    from lakeforge.monitoring import drift
    from lakeforge.spark import build_session
    from lakeforge.steps import monitor
    from lakeforge.storage import delta
    from lakeforge.storage.paths import Tables, lakehouse_root, tables_for
    from lakeforge.tracking import models

    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(args.dataset)
    ds = cfg.dataset
    assert ds.train is not None
    spark = build_session(cfg.settings, app_name="lakeforge-bench-monitor")
    tables = tables_for(cfg.settings, ds.name)
    if not delta.is_table(spark, tables.predictions):
        raise SystemExit(f"no predictions at {tables.predictions}: run scripts/demo.sh first")
    gold = delta.read(spark, tables.predictions)
    batch = args.batch_id or str(
        gold.orderBy(F.desc("_scored_at")).select("_batch_id").first()[0]  # type: ignore[index]
    )
    first = gold.where(F.col("_batch_id") == batch).select("_source_version").first()
    assert first is not None, f"batch {batch} not in {tables.predictions}"
    source_version = int(first[0])
    columns = list(dict.fromkeys([*ds.train.features.input_columns(), ds.train.label]))

    def plain_scan() -> int:
        rows = delta.read(spark, tables.silver, as_of=source_version)
        if ds.predict.where:
            rows = rows.where(ds.predict.where)
        aggregates = [F.count(F.lit(1)).alias("rows")]
        for c in columns:
            aggregates += [F.min(c).alias(f"min_{c}"), F.max(c).alias(f"max_{c}")]
        row = rows.select(*columns).agg(*aggregates).first()
        assert row is not None
        return int(row["rows"])

    jobs = Jobs(spark)
    phases = Phases(jobs)
    # monitor's phases (seconds and jobs of each, in its best run)
    phases.wrap(monitor, "_latest_batch", "latest batch")
    phases.wrap(monitor, "_already_measured", "already measured?")
    phases.wrap(monitor, "serving_model", "registry lookup")
    phases.wrap(monitor, "_reference_profile", "reference profile")
    phases.wrap(models.ServingModel, "load", "model load")
    if hasattr(monitor, "_derivation"):  # the derivation stages alone
        phases.wrap(monitor, "_derivation", "model load")
    phases.wrap(monitor, "_narrow", "derive + cache inputs")
    if hasattr(drift, "compare"):  # every drift in one aggregation
        phases.wrap(drift, "compare", "drift")
    else:
        phases.wrap(drift, "compare_numeric", "drift numeric")
        phases.wrap(drift, "compare_categorical", "drift categorical")
    phases.wrap(monitor, "_labelled", "performance")
    phases.wrap(delta, "replace_where", "monitoring write")
    phases.wrap(mlflow, "start_run", "mlflow run")

    scratch = Path(tempfile.mkdtemp(prefix="lakeforge-bench-monitor-"))
    real_tables_for = monitor.tables_for

    def fresh_monitoring_table(path: str) -> None:
        class Scratch(Tables):
            @property
            def monitoring(self) -> str:
                return path

        monitor.tables_for = lambda settings, name: Scratch(lakehouse_root(settings), name)

    client = MlflowClient(cfg.settings.mlflow.tracking_uri)
    logged: list[str] = []
    scans: list[tuple[float, int]] = []
    runs: list[tuple[float, int, dict[str, list[float]]]] = []
    results = []
    try:
        rows = 0
        for i in range(args.repeat):
            with jobs.group("scan") as count:
                start = time.perf_counter()
                rows = plain_scan()
                scans.append((time.perf_counter() - start, count()))
            fresh_monitoring_table(str(scratch / f"monitoring-{i}"))
            phases.reset()
            with jobs.group("monitor") as count:
                start = time.perf_counter()
                result = monitor.run(spark, cfg, batch, signal=False)
                spent = time.perf_counter() - start
                by_phase = phases.reset()
                # a phase's jobs ran under its own group
                total = count() + int(sum(n for _, n in by_phase.values()))
                runs.append((spent, total, by_phase))
            assert not result.skipped
            results.append(result)
            active = mlflow.last_active_run()
            if active is not None:
                logged.append(active.info.run_id)
        scan_s, scan_jobs = min(scans)
        best = min(runs, key=lambda r: r[0])
        mon_s, mon_jobs, by_phase = best
        # every run measured the same figures
        for other in results[1:]:
            assert other.drifts == results[0].drifts, "drift figures differ between runs"
            assert other.performance.keys() == results[0].performance.keys()
        print(f"batch {batch}: {rows:,} rows (silver v{source_version}); best of {args.repeat}")
        print(
            f"  plain scan (inputs + label, one aggregation): {scan_s:6.2f} s {scan_jobs:4d} jobs"
        )
        print(f"  lakeforge monitor (drift + performance):      {mon_s:6.2f} s {mon_jobs:4d} jobs")
        print(f"  ratio monitor / plain scan:                   {mon_s / scan_s:6.2f}x (target 2x)")
        print("  monitor's phases in its best run:")
        accounted = 0.0
        for phase, (seconds, n) in sorted(by_phase.items(), key=lambda p: -p[1][0]):
            accounted += seconds
            print(f"    {phase:<24} {seconds:6.2f} s  {int(n):4d} jobs")
        print(f"    {'(the rest)':<24} {mon_s - accounted:6.2f} s")
        print("  all runs (s): scan " + ", ".join(f"{s:.2f}" for s, _ in scans))
        print("                monitor " + ", ".join(f"{s:.2f}" for s, _, _ in runs))
        first_result = results[0]
        measured = {(d.subject, "psi"): d.psi for d in first_result.drifts}
        measured.update({(d.subject, "ks"): d.ks for d in first_result.drifts if d.ks is not None})
        measured.update({("performance", k): v for k, v in first_result.performance.items()})
        # the figures monitor stored for this batch and model (by whichever
        # version of the code measured it last): the same to rounding?
        if delta.is_table(spark, tables.monitoring):
            stored = {
                (r["subject"], r["measure"]): r["value"]
                for r in delta.read(spark, tables.monitoring)
                .where(
                    (F.col("batch_id") == batch)
                    & (F.col("model_version") == first_result.model_version)
                    & (F.col("kind") != monitor.SETTINGS)
                )
                .collect()
            }
            if stored:
                same = stored.keys() == measured.keys()
                gap = max(abs(stored[k] - measured[k]) for k in measured) if same else None
                print(
                    f"  vs the {len(stored)} figures stored in {tables.monitoring}: "
                    + ("other measures" if gap is None else f"largest difference {gap:.3g}")
                )
        for (subject, measure), value in sorted(measured.items()):
            print(f"    {subject:<24} {measure:<26} {value:.15g}")
    finally:
        monitor.tables_for = real_tables_for
        for run_id in logged:
            client.delete_run(run_id)
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
