"""Benchmark: lakeforge's cross-validated search vs. pyspark.ml's CrossValidator
(and scikit-learn's GridSearchCV, the single-machine peer), side by side in one
run on the same rows, folds and grid.

Data: synthetic, ROWS rows of 8 numeric and 3 categorical columns with a
binary label from a known logistic model. Pipeline: median imputation,
standard scaling, one-hot encoding, logistic regression. Grid: regParam x
elasticNetParam (24 points by default), 3 folds.

    .venv/bin/python bench/tune_vs_crossvalidator.py [--rows 200000] [--grid 24]
        [--variants ours,halving,ours-spark,stock-n,stock-1,sklearn]

Variants: `ours` (the default search: logistic regression in shared passes),
`halving` (the same with successive halving, factor 3), `ours-spark` (our
search with `solver: spark`, Spark's own fit per candidate), `stock-n` and
`stock-1` (CrossValidator with parallelism N and 1), `sklearn`.

Prints, per variant: seconds, ratio to the best stock setting, the Spark jobs
it launched, and the best candidate with its mean CV ROC AUC.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

VARIANTS = ("ours", "halving", "ours-spark", "stock-n", "stock-1", "sklearn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--grid", type=int, default=24, help="candidates (<= 48)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()

    import search_data as bench

    from lakeforge.config.training import Halving
    from lakeforge.spark import cores
    from lakeforge.split.assign import FOLD

    spark = bench.session("lakeforge-bench-tune")
    n_cores = cores(spark)
    points = bench.grid_points(args.grid)
    spec = bench.train_spec(points, args.folds)
    specs = bench.grid_specs(spec, points)
    train = bench.synthetic(spark, args.rows, spec)
    rows = train.count()
    counter = bench.JobCounter(spark)
    bench.warm_up(spark, n_cores)
    same = (train, spec, specs)

    results: list[tuple[str, float, int, str, float]] = []

    def timed(name: str, run: Callable[[], tuple[str, float]]) -> None:
        start_job = counter.mark()
        start = time.perf_counter()
        best, auc = run()
        seconds = time.perf_counter() - start
        jobs = counter.mark() - start_job - 1
        results.append((name, seconds, jobs, best, auc))
        print(f"{name:<40} {seconds:8.1f}s {jobs:6d} jobs  best {best} auc {auc:.4f}", flush=True)

    def sklearn() -> tuple[str, float]:
        import numpy as np
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression as SkLR
        from sklearn.model_selection import GridSearchCV, PredefinedSplit
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        frame = train.where("_split = 'train'").toPandas()
        numeric = [f"x{i}" for i in range(8)]
        prep = ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["c0", "c1", "c2"]),
            ]
        )
        pipe = make_pipeline(prep, SkLR(max_iter=200))
        n = len(frame)
        search = GridSearchCV(
            pipe,
            {"logisticregression__C": [1.0 / (r * n) if r > 0 else 1e6 for r in bench.REG]},
            scoring="roc_auc",
            cv=PredefinedSplit(frame[FOLD].to_numpy()),
            n_jobs=2,
        ).fit(frame[[*numeric, "c0", "c1", "c2"]], np.asarray(frame["y"]))
        return f"C={search.best_params_['logisticregression__C']:.3g}", float(search.best_score_)

    print(f"rows={rows} candidates={len(specs)} folds={args.folds} cores={n_cores}", flush=True)
    runs: dict[str, tuple[str, Callable[[], tuple[str, float]]]] = {
        "ours": ("lakeforge exhaustive", lambda: bench.ours(*same, n_cores)),
        "halving": (
            "lakeforge halving (factor 3)",
            lambda: bench.ours(*same, n_cores, halving=Halving(factor=3)),
        ),
        "ours-spark": (
            "lakeforge exhaustive, solver spark",
            lambda: bench.ours(*same, n_cores, solver="spark"),
        ),
        "stock-n": (f"CrossValidator(parallelism={n_cores})", lambda: bench.stock(*same, n_cores)),
        "stock-1": ("CrossValidator(parallelism=1)", lambda: bench.stock(*same, 1)),
        "sklearn": ("scikit-learn GridSearchCV(n_jobs=2), l2 only", sklearn),
    }
    for variant in args.variants.split(","):
        timed(*runs[variant])
    stock_best = min(
        (s for name, s, *_ in results if name.startswith("CrossValidator")), default=math.nan
    )
    print("\nvariant                                   seconds  vs best stock  jobs  best auc")
    for name, seconds, jobs, _, auc in results:
        print(f"{name:<40} {seconds:8.1f} {stock_best / seconds:10.2f}x {jobs:7d}  {auc:.4f}")
    train.unpersist()
    spark.stop()


if __name__ == "__main__":
    main()
