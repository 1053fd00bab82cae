"""A training config with a wrong estimator, param or value fails at load time,
before Spark starts, naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakeforge.cli import main
from lakeforge.config import load_job_config
from lakeforge.errors import ConfigError
from tests.helpers import write_scores_dataset


def _fails(tmp_path: Path, match: str, **changes: object) -> None:
    path = write_scores_dataset(tmp_path / "conf", **changes)
    with pytest.raises(ConfigError, match=match):
        load_job_config(path)


def test_the_small_training_config_is_valid(tmp_path: Path) -> None:
    cfg = load_job_config(write_scores_dataset(tmp_path / "conf"))
    assert cfg.dataset.train is not None
    assert cfg.dataset.train.metric == "roc_auc"


def test_unknown_estimator_names_the_catalogue(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"train: .*models\.0 \(xgboosted\): unknown estimator; the catalogue has: .*gbt",
        models=[{"estimator": "xgboosted"}],
    )


def test_unknown_param_lists_the_estimators_params(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"unknown param 'regParm'; it takes: .*regParam",
        models=[{"estimator": "logistic_regression", "grid": {"regParm": [0.1]}}],
    )


def test_param_value_of_the_wrong_type_fails(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"param maxIter='many'",
        models=[{"estimator": "logistic_regression", "params": {"maxIter": "many"}}],
    )


def test_estimator_that_does_not_do_the_task_fails(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"linear_regression\): does not do binary",
        models=[{"estimator": "linear_regression"}],
    )


def test_metric_of_another_task_fails(tmp_path: Path) -> None:
    _fails(tmp_path, r"search.metric 'rmse' is not a binary metric", search={"metric": "rmse"})


def test_multinomial_naive_bayes_with_standard_scaling_fails(tmp_path: Path) -> None:
    _fails(tmp_path, r"non-negative features", models=[{"estimator": "naive_bayes"}])


def test_feature_on_an_unknown_column_fails(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"train names unknown column 'x9'",
        features={"numeric": {"columns": ["x9"]}},
    )


def test_train_with_a_bad_estimator_exits_2_before_spark_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_scores_dataset(tmp_path / "conf", models=[{"estimator": "xgboosted"}])
    assert main(["train", "--dataset", str(path)]) == 2
    assert "unknown estimator" in capsys.readouterr().err


def test_class_weights_need_estimators_that_take_row_weights(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"models\.0 \(mlp\): takes no row weights, so it cannot use train\.class_weight",
        models=[{"estimator": "mlp"}],
        class_weight="balanced",
    )


def test_a_stack_member_is_checked_like_a_candidate(tmp_path: Path) -> None:
    stack = {"estimator": "stacking", "base": [{"estimator": "logistic_regression"}]}
    _fails(tmp_path, r"models\.0 \(stacking\): stacking needs two or more base", models=[stack])
    stack["base"] = [
        {"estimator": "logistic_regression"},
        {"estimator": "random_forest", "params": {"numTree": 5}},
    ]
    _fails(tmp_path, r"base\.1 \(random_forest\): unknown param 'numTree'", models=[stack])
    _fails(
        tmp_path,
        r"models\.0 \(logistic_regression\): base and meta are for estimator stacking",
        models=[{"estimator": "logistic_regression", "base": [{"estimator": "gbt"}] * 2}],
    )


def test_xgboost_params_are_checked_against_xgboost_spark(tmp_path: Path) -> None:
    _fails(
        tmp_path,
        r"models\.0 \(xgboost\): unknown param 'max_dept'; it takes: .*max_depth",
        models=[{"estimator": "xgboost", "grid": {"max_dept": [3]}}],
    )
    _fails(  # xgboost.spark takes the thread count from Spark
        tmp_path,
        r"unknown param 'n_jobs'",
        models=[{"estimator": "xgboost", "params": {"n_jobs": 4}}],
    )


def test_a_decision_threshold_is_for_binary_models_with_a_validation_split(
    tmp_path: Path,
) -> None:
    _fails(
        tmp_path,
        r"optimise precision needs a target",
        threshold={"optimise": "precision"},
    )
    _fails(
        tmp_path,
        r"threshold is tuned on the validation split",
        threshold={"optimise": "f1"},
        split={"validation": 0.0, "test": 0.25},
    )
    _fails(
        tmp_path,
        r"threshold is for task binary",
        task="regression",
        models=[{"estimator": "linear_regression"}],
        threshold={"optimise": "f1"},
    )
