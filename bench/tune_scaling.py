"""Benchmark: how lakeforge's model search grows with rows (1x, 4x, 16x) and
with candidates (12, 24, 48), next to pyspark.ml's CrossValidator on the same
rows, folds and grid (`--stock`), in one run.

    .venv/bin/python bench/tune_scaling.py [--rows 50000] [--stock]

Same synthetic data and pipeline as bench/tune_vs_crossvalidator.py (median
imputation, standard scaling, one-hot, logistic regression, 3 folds). Prints
seconds, Spark jobs and best mean CV ROC AUC per point, and each time over
the first point's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="the 1x row count")
    parser.add_argument("--candidates", type=int, default=12, help="the 1x grid size")
    parser.add_argument("--stock", action="store_true", help="also CrossValidator(parallelism=N)")
    args = parser.parse_args()

    import search_data as bench

    from lakeforge.spark import cores

    spark = bench.session("lakeforge-bench-tune-scaling")
    n_cores = cores(spark)
    counter = bench.JobCounter(spark)
    bench.warm_up(spark, n_cores)
    plan = [(args.rows * k, args.candidates) for k in (1, 4, 16)]
    plan += [(args.rows, args.candidates * k) for k in (2, 4)]
    print(f"cores={n_cores} folds=3; points: rows x candidates", flush=True)
    print(f"{'rows':>9} {'cands':>5} {'variant':<30} {'seconds':>8} {'x 1st':>6} {'jobs':>6}  auc")
    first: dict[str, float] = {}
    for rows, n in plan:
        points = bench.grid_points(n)
        spec = bench.train_spec(points, 3)
        specs = bench.grid_specs(spec, points)
        train = bench.synthetic(spark, rows, spec)

        same = (train, spec, specs, n_cores)
        variants: list[tuple[str, Callable[[], tuple[str, float]]]] = [
            ("lakeforge", partial(bench.ours, *same))
        ]
        if args.stock:
            variants.append((f"CrossValidator({n_cores})", partial(bench.stock, *same)))
        for name, run in variants:
            before = counter.mark()
            start = time.perf_counter()
            _, auc = run()
            seconds = time.perf_counter() - start
            jobs = counter.mark() - before - 1
            ratio = seconds / first.setdefault(name, seconds)
            print(
                f"{rows:>9} {n:>5} {name:<30} {seconds:8.1f} {ratio:6.2f} {jobs:6d}  {auc:.4f}",
                flush=True,
            )
        train.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
