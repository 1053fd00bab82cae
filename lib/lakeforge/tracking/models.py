"""Which registered model version scores, and what its training run recorded."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pyspark.ml import PipelineModel

from lakeforge.errors import InputNotFound
from lakeforge.tracking.registry import CHAMPION


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    run_id: str
    silver_table: str  # what it was trained on
    silver_version: int | None  # None: the run did not record it (not trained by lakeforge)
    train_where: str
    # the split assignment it was trained with (train writes it; None: not recorded)
    split_table: str = ""
    split_version: int | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def load(self) -> PipelineModel:
        model: PipelineModel = mlflow.spark.load_model(self.uri)
        return model


def serving_model(tracking_uri: str, name: str, version: int | None) -> ServingModel:
    """The pinned `version` of model `name`, or the one holding the champion alias.

    Raises InputNotFound when there is no such version or no champion yet.
    """
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    try:
        found = (
            client.get_model_version(name, str(version))
            if version is not None
            else client.get_model_version_by_alias(name, CHAMPION)
        )
    except MlflowException:
        wanted = (
            f"version {version}" if version is not None else f"version with the {CHAMPION} alias"
        )
        raise InputNotFound(
            f"model {name!r} has no {wanted} in {tracking_uri}: {_hint(client, name, version)}"
        ) from None
    run = client.get_run(str(found.run_id))
    return ServingModel(
        name=name,
        version=str(found.version),
        run_id=str(found.run_id),
        silver_table=run.data.tags.get("lakeforge.silver_table", ""),
        silver_version=_version(run.data.tags.get("lakeforge.silver_version")),
        train_where=run.data.params.get("where", ""),
        split_table=run.data.params.get("split_table", ""),
        split_version=_version(run.data.params.get("split_table_version")),
    )


def _hint(client: MlflowClient, name: str, version: int | None) -> str:
    """What to do about a missing version or champion: train, or (versions
    exist, none is champion) look at why the gate held them back."""
    if version is None:
        try:
            registered = len(client.search_model_versions(f"name = '{name}'", max_results=1))
        except MlflowException:
            registered = 0
        if registered:
            return (
                "no version holds it: the gate held them back (a fairness limit) or the alias "
                "was removed; see each version's lakeforge.gate tag"
            )
    return "run train first"


def _version(recorded: str | None) -> int | None:
    """A Delta version the run recorded; None when it recorded none (never a
    silent version 0: reading v0 for a missing tag gives the wrong rows)."""
    return None if recorded in (None, "") else int(recorded)
