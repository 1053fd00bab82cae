"""Table-level rules checked by Great Expectations (GX 1.x) on a Spark DataFrame.

The suite is built from the config's table-level rules (unique, row_count,
null_fraction). The result is saved as JSON and rendered as Data Docs HTML in
a file-backed GX project under the dataset's `_quality` folder. GX reports a
failed validation with `success == False` and raises nothing; the caller
decides from `failed_rules` what to stop. Clean validates two frames: the
deduplicated batch, and silver's rows of the batch's keys after the MERGE
(the `unique` rule over the keys); each has its own suite and report.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame

# No usage statistics leave the machine (and none can: jobs may run offline).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

from lakeforge.config.cleaning import Rule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableValidation:
    success: bool
    results: dict[str, bool] = field(default_factory=dict)  # rule name → passed
    observed: dict[str, object] = field(default_factory=dict)
    report_json: str | None = None
    data_docs: str | None = None


def _expectation(rule: Rule) -> Any:
    import great_expectations as gx

    if rule.type == "row_count":
        return gx.expectations.ExpectTableRowCountToBeBetween(
            min_value=None if rule.min is None else int(rule.min),
            max_value=None if rule.max is None else int(rule.max),
            meta={"rule": rule.name},
        )
    if rule.type == "null_fraction":
        most = 1.0 - (rule.max if rule.max is not None else 1.0)
        return gx.expectations.ExpectColumnValuesToNotBeNull(
            column=str(rule.column), mostly=max(0.0, min(1.0, most)), meta={"rule": rule.name}
        )
    if rule.type == "unique":
        columns = rule.columns or ([rule.column] if rule.column else [])
        if len(columns) == 1:
            return gx.expectations.ExpectColumnValuesToBeUnique(
                column=columns[0], meta={"rule": rule.name}
            )
        return gx.expectations.ExpectCompoundColumnsToBeUnique(
            column_list=columns, meta={"rule": rule.name}
        )
    raise ValueError(f"{rule.name}: {rule.type} is not a table-level rule")


def validate_table(
    df: DataFrame,
    rules: Sequence[Rule],
    dataset: str,
    batch_id: str,
    project_dir: str | None,
    *,
    scope: str = "batch",
) -> TableValidation:
    """Validate `df` against the table-level `rules`; write JSON + Data Docs when
    `project_dir` is a local folder. No rules: nothing to run, success.
    `scope` names what `df` holds (`batch`, `silver`): another scope gets
    suites, names and a JSON report of its own, beside the batch's."""
    table_rules = [r for r in rules if not r.is_row_level]
    if not table_rules:
        return TableValidation(success=True)
    suffix = "" if scope == "batch" else f"-{scope}"
    # unique with no columns means the dataset keys: resolved by the caller
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context: Any
        if project_dir is not None:
            Path(project_dir).mkdir(parents=True, exist_ok=True)
            context = gx.get_context(mode="file", project_root_dir=project_dir)
        else:
            context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_or_update_spark(name=f"lakeforge{suffix}")
        asset = source.add_dataframe_asset(name=dataset)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{dataset}-batch")
        suite_name = f"{dataset}{suffix}-table-rules"
        if any(s.name == suite_name for s in context.suites.all()):
            context.suites.delete(suite_name)
        suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
        for rule in table_rules:
            suite.add_expectation(_expectation(rule))
        name = f"{dataset}{suffix}-validation"
        if any(v.name == name for v in context.validation_definitions.all()):
            context.validation_definitions.delete(name)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
        )
        checkpoint_name = f"{dataset}{suffix}-checkpoint"
        if any(c.name == checkpoint_name for c in context.checkpoints.all()):
            context.checkpoints.delete(checkpoint_name)
        actions: list[Any] = (
            [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if project_dir else []
        )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=checkpoint_name, validation_definitions=[definition], actions=actions
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": df}, run_id=None)
    results: dict[str, bool] = {}
    observed: dict[str, object] = {}
    payload: list[dict[str, Any]] = []
    for validation in run.run_results.values():
        for item in validation.results:
            config = item.expectation_config
            rule_name = str(((config.meta if config else None) or {}).get("rule"))
            results[rule_name] = bool(item.success)
            observed[rule_name] = (item.result or {}).get("observed_value", item.result)
        payload.append(validation.to_json_dict())
    report = None
    docs = None
    if project_dir is not None:
        report = str(Path(project_dir) / f"validation-{batch_id}{suffix}.json")
        Path(report).write_text(json.dumps(payload, indent=2, default=str))
        index = Path(project_dir) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        docs = str(index) if index.is_file() else None
    return TableValidation(
        success=all(results.values()),
        results=results,
        observed=observed,
        report_json=report,
        data_docs=docs,
    )
