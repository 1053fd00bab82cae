"""xgboost's Spark classifier, told the number of classes by the label column.

`SparkXGBClassifier` counts the distinct labels of the rows it is given and
trains a binary model when it finds two. On a fold that lacks one of three
classes it would then give two probability slots instead of three (or fail
on labels outside 0..1), unlike Spark's own classifiers, which read the class
count from the label's metadata (see `lakeforge.models.labels`). This
subclass reads that metadata too; its fitted model is xgboost's own
`SparkXGBClassifierModel`, so saving and loading are unchanged.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame
from xgboost.spark import SparkXGBClassifier

from lakeforge.models.labels import classes_of


class XGBClassifier(SparkXGBClassifier):
    """`SparkXGBClassifier` that trains k-class models when the label says k."""

    def _fit(self, dataset: DataFrame) -> Any:
        # read before xgboost renames and casts the label column (one fit at a
        # time per estimator object: the search builds one per fit)
        self._declared_classes = classes_of(dataset, self.getOrDefault(self.labelCol))
        return super()._fit(dataset)

    def _get_distributed_train_params(self, dataset: DataFrame) -> dict[str, Any]:
        params: dict[str, Any] = super()._get_distributed_train_params(dataset)
        declared = getattr(self, "_declared_classes", None)
        if declared is not None and declared > 2:
            params["objective"] = "multi:softprob"
            params["num_class"] = declared
        return params
