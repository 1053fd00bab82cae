"""The multiclass and regression demos (conf/datasets/penguins*.yaml) run
end to end on the real Palmer penguins file: every bird accounted for, the
2009 season scored, and the registered model at least as good as
scikit-learn's plain reference on the same split rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lakeforge.cli import main
from lakeforge.config import load_job_config
from lakeforge.split.assign import SPLIT, assign
from lakeforge.storage import delta

pytestmark = pytest.mark.integration

CONF = Path(__file__).resolve().parents[2] / "conf" / "datasets"
BIRDS = 344  # rows of penguins-raw.csv
UNMEASURED = 2  # birds without bill, flipper and mass measurements


def _reference(
    train: pd.DataFrame, test: pd.DataFrame, numeric: list[str], cat: list[str]
) -> tuple[ColumnTransformer, pd.DataFrame, pd.DataFrame]:
    """The same features the config builds, by scikit-learn."""
    prepare = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                cat,
            ),
        ]
    )
    return prepare, train[[*numeric, *cat]], test[[*numeric, *cat]]


@pytest.mark.parametrize("name", ["penguins", "penguins_mass"])
def test_penguin_demo_accounts_for_every_bird_and_beats_the_plain_reference(
    spark: SparkSession, lakehouse: Path, name: str
) -> None:
    config = CONF / f"{name}.yaml"
    assert main(["pipeline", "--dataset", str(config)]) == 0
    cfg = load_job_config(config)
    spec = cfg.dataset.train
    assert spec is not None

    def table(which: str) -> str:
        return f"{lakehouse}/{name}/{which}"

    assert delta.read(spark, table("bronze")).count() == BIRDS
    silver = delta.read(spark, table("silver"))
    assert silver.count() + delta.read(spark, table("silver_quarantine")).count() == BIRDS
    assert delta.read(spark, table("silver_quarantine")).count() == UNMEASURED
    scored = delta.read(spark, table("predictions"))
    assert scored.count() == silver.where("egg_year = 2009").count() > 100

    client = MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion")
    run = client.get_run(str(champion.run_id))
    metrics = run.data.metrics
    # the champion, whichever estimator won, is served online as Spark scores it
    assert champion.tags["lakeforge.servable"] == "true", champion.tags
    assert metrics["online_parity_max_diff"] <= 1e-5
    assert metrics["online_parity_rows"] == int(run.data.params["rows_test"])

    rows = assign(
        silver.where(spec.where or "true").where(F.col(spec.label).isNotNull()),
        cfg.dataset.keys,
        spec.split,
        spec.label,
    )
    train_pd = rows.where(F.col(SPLIT) == "train").toPandas()
    test_pd = rows.where(F.col(SPLIT) == "test").toPandas()
    assert int(run.data.params["rows_test"]) == len(test_pd)
    numeric = spec.features.numeric.columns if spec.features.numeric else []
    cat = spec.features.categorical.columns if spec.features.categorical else []
    prepare, x_train, x_test = _reference(train_pd, test_pd, numeric, cat)
    if spec.task == "multiclass":
        sk = make_pipeline(prepare, LogisticRegression(max_iter=2000))
        sk.fit(x_train, train_pd[spec.label])
        expected = accuracy_score(test_pd[spec.label], sk.predict(x_test))
        assert metrics["test_accuracy"] >= expected - 0.02
        assert sorted(scored.select("prediction").distinct().toPandas()["prediction"]) == [
            0.0,
            1.0,
            2.0,
        ]
    else:
        sk = make_pipeline(prepare, LinearRegression())
        sk.fit(x_train, train_pd[spec.label])
        expected = float(np.sqrt(mean_squared_error(test_pd[spec.label], sk.predict(x_test))))
        assert metrics["test_rmse"] <= expected * 1.1
        assert metrics["test_r2"] > 0.75
