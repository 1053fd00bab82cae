"""The Delta table versions registered models pin: what their training runs
read, which table maintenance must keep readable (`lakeforge maintain`).

A registered model version pins every table version its run recorded: the
silver table and version (run tags `lakeforge.silver_table` /
`lakeforge.silver_version`), the split assignment (params `split_table` /
`split_table_version`) and any Delta table logged as an MLflow input
(`mlflow.log_input` of a `delta_table` source with a version). Every
registered version pins, whatever its alias (`champion`, `challenger` or
none), except an archived one: a version tagged `archived` = `true`, or in the
(deprecated) `Archived` stage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

ARCHIVED_TAG = "archived"
# on a model version whose pinned table versions `lakeforge forget --force` erased
FORGET_TAG = "lakeforge.forget"
_TAG_LIMIT = 5000


@dataclass(frozen=True)
class Pin:
    """Version `version` of the Delta table at `table` is what model
    `model` version `model_version` was trained on."""

    table: str
    version: int
    model: str
    model_version: str

    @property
    def owner(self) -> str:
        return f"model {self.model} v{self.model_version}"


@dataclass(frozen=True)
class RegistryPins:
    pins: tuple[Pin, ...]
    archived: tuple[str, ...]  # "name vN" of the versions that pin nothing


def is_archived(version: ModelVersion) -> bool:
    tagged = str((version.tags or {}).get(ARCHIVED_TAG, "")).strip().lower() == "true"
    return tagged or str(version.current_stage or "").lower() == "archived"


def registered_pins(tracking_uri: str) -> RegistryPins:
    """The pins of every registered model version of the registry at
    `tracking_uri` (all models: a model renamed in the config, or trained on
    another dataset's table, still pins what its runs read). A version whose
    run is gone pins nothing known, and is logged."""
    client = MlflowClient(tracking_uri=tracking_uri)
    pins: list[Pin] = []
    archived: list[str] = []
    runs: dict[str, Run | None] = {}
    for version in _all_versions(client):
        label = f"{version.name} v{version.version}"
        if is_archived(version):
            archived.append(label)
            continue
        run_id = str(version.run_id or "")
        if run_id not in runs:
            runs[run_id] = _run(client, run_id)
        run = runs[run_id]
        if run is None:
            log.warning(
                "maintain: %s: its run %r is gone, so what it pins is unknown", label, run_id
            )
            continue
        pins.extend(run_pins(run, version.name, str(version.version)))
    return RegistryPins(tuple(dict.fromkeys(pins)), tuple(archived))


def run_pins(run: Run, model: str, model_version: str) -> list[Pin]:
    """The table versions `run` recorded reading."""
    found: list[tuple[str, str]] = []
    tags, params = run.data.tags, run.data.params
    found.append((tags.get("lakeforge.silver_table", ""), tags.get("lakeforge.silver_version", "")))
    found.append((params.get("split_table", ""), params.get("split_table_version", "")))
    for logged in run.inputs.dataset_inputs if run.inputs else []:
        if logged.dataset.source_type != "delta_table":
            continue
        try:
            source = json.loads(logged.dataset.source)
        except ValueError:
            continue
        if isinstance(source, dict):
            found.append(
                (str(source.get("path") or ""), str(source.get("delta_table_version", "")))
            )
    pins = []
    for table, version in found:
        if table and version.isdigit():
            pins.append(Pin(table.rstrip("/"), int(version), model, model_version))
    return list(dict.fromkeys(pins))


def mark_unreproducible(tracking_uri: str, lost: dict[tuple[str, str], str]) -> None:
    """Tag each model version of `lost` ((model, version) → what it lost)
    `lakeforge.forget`, after what earlier erasures wrote there: the table
    versions its run read can no longer be read back, so the run cannot be
    reproduced (`lakeforge forget --force`)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    for (model, version), note in lost.items():
        earlier = str((client.get_model_version(model, version).tags or {}).get(FORGET_TAG, ""))
        text = f"{earlier}; {note}" if earlier else note
        # a tag value holds 5,000 characters: the latest erasures are kept
        client.set_model_version_tag(model, version, FORGET_TAG, text[-_TAG_LIMIT:])


def _all_versions(client: MlflowClient) -> Iterator[ModelVersion]:
    token: str | None = None
    while True:
        page = client.search_model_versions(page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def _run(client: MlflowClient, run_id: str) -> Run | None:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None
