"""Saving a stage that holds other stages (stacking's base models and
meta-learner) the way Spark saves a Pipeline: the holder's simple params as
metadata at `path`, each member in `path/stages/IDX_UID`, written by the
member's own writer. Loading reads each member back by the class its
metadata names, so Java models, Python stages and xgboost.spark models can
all be members."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from pyspark.ml.param import Params
from pyspark.ml.pipeline import PipelineSharedReadWrite
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter
from pyspark.sql import SparkSession


def _member_path(path: str, uid: str, index: int, count: int) -> str:
    return PipelineSharedReadWrite.getStagePath(uid, index, count, os.path.join(path, "stages"))


class MembersWriter(MLWriter):
    """Writes `instance` (its params but `skip`, which hold the members) and `members`."""

    def __init__(self, instance: Params, members: Sequence[Any], skip: Sequence[str]) -> None:
        super().__init__()
        self.instance = instance
        self.members = list(members)
        self.skip = set(skip)

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        params = {p.name: v for p, v in self.instance._paramMap.items() if p.name not in self.skip}
        uids = [m.uid for m in self.members]
        DefaultParamsWriter.saveMetadata(
            self.instance, path, spark, extraMetadata={"memberUids": uids}, paramMap=params
        )
        for index, member in enumerate(self.members):
            member.write().session(spark).save(_member_path(path, member.uid, index, len(uids)))


class MembersReader(MLReader[Any]):
    """Reads what MembersWriter wrote; `build(members)` makes the instance."""

    def __init__(self, build: Callable[[list[Any]], Any]) -> None:
        super().__init__()
        self.build = build

    def load(self, path: str) -> Any:
        spark: SparkSession = self.sparkSession
        metadata = DefaultParamsReader.loadMetadata(path, spark)
        uids = metadata["memberUids"]
        members: list[Any] = [
            DefaultParamsReader.loadParamsInstance(_member_path(path, uid, i, len(uids)), spark)
            for i, uid in enumerate(uids)
        ]
        instance = self.build(members)
        instance._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        return instance
