"""Deployment definitions: rendered from the one job list, committed up to date,
and valid against each platform's own request/spec types (databricks-sdk,
botocore's EMR models, Dataproc's protobuf); the library zip imports and is
byte-for-byte reproducible."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from databricks.sdk.service.jobs import JobSettings
from google.cloud.dataproc_v1 import WorkflowTemplate
from google.protobuf import json_format

from lakeforge.cli import STEPS
from lakeforge.config.loader import load_settings
from lakeforge.deploy import render
from lakeforge.deploy.jobs import JOB_NAMES, JOBS, spark_submit_command
from lakeforge.deploy.package import build
from lakeforge.jars import BASE_JARS, delta_jar_paths

REPO = Path(__file__).resolve().parents[2]
CHAIN = [list(job.after) for job in JOBS]


def _load(relative: str) -> Any:
    text = (REPO / relative).read_text()
    return json.loads(text) if relative.endswith(".json") else yaml.safe_load(text)


def test_job_list_is_every_step_and_every_step_has_a_script() -> None:
    assert set(STEPS) - {"pipeline"} == set(JOB_NAMES)
    for job in JOBS:
        assert (REPO / job.script).is_file()
        assert all(JOB_NAMES.index(dep) < JOB_NAMES.index(job.name) for dep in job.after)


def test_committed_definitions_are_rendered_from_the_job_list() -> None:
    stale = [
        relative
        for relative, text in render.render_all(render.Options()).items()
        if (REPO / relative).read_text() != text
    ]
    assert stale == [], f"run `python -m lakeforge.deploy.render`: {stale} differ"


def test_a_new_job_reaches_every_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = render.Job("export", "a step added later", ("monitor",))
    monkeypatch.setattr(render, "JOBS", (*JOBS, extra))
    for relative, text in render.render_all(render.Options()).items():
        assert "export" in text, f"{relative} left the new job out"


def test_databricks_bundle_job_is_valid_job_settings() -> None:
    bundle = _load("databricks.yml")
    (job,) = bundle["resources"]["jobs"].values()
    # from_dict keeps only fields the Jobs API knows: a typo would not survive.
    assert JobSettings.from_dict(job).as_dict() == job
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == list(JOB_NAMES)
    assert [[d["task_key"] for d in t.get("depends_on", [])] for t in tasks] == CHAIN
    for task in tasks:
        assert (REPO / task["spark_python_task"]["python_file"]).is_file()
        assert task["job_cluster_key"] == job["job_clusters"][0]["job_cluster_key"]
    assert set(bundle) <= {"bundle", "variables", "sync", "resources", "targets"}
    assert bundle["targets"]["dev"]["default"] is True


def _validate(service: str, operation: str, params: dict[str, Any]) -> str:
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(params, model.operation_model(operation).input_shape)
    return str(report.generate_report())


def test_emr_steps_are_valid_add_job_flow_steps_requests() -> None:
    steps = _load("deploy/emr/steps.json")
    assert _validate("emr", "AddJobFlowSteps", {"JobFlowId": "j-1", "Steps": steps}) == ""
    assert [s["Name"] for s in steps] == [f"lakeforge-{n}" for n in JOB_NAMES]
    for step, name in zip(steps, JOB_NAMES, strict=True):
        args = step["HadoopJarStep"]["Args"]
        assert args[0] == "spark-submit"
        assert any(a.endswith(f"/jobs/{name}.py") for a in args)
        assert "--py-files" in args and "--jars" in args


def test_emr_serverless_requests_are_valid_start_job_run_requests() -> None:
    runs = _load("deploy/emr/serverless-job-runs.json")
    assert list(runs) == list(JOB_NAMES)
    for name, request in runs.items():
        # the CLI fills the idempotency token itself, one per call
        assert _validate("emr-serverless", "StartJobRun", {**request, "clientToken": "t"}) == ""
        driver = request["jobDriver"]["sparkSubmit"]
        assert driver["entryPoint"].endswith(f"/jobs/{name}.py")
        for jar in BASE_JARS:
            assert jar.filename in driver["sparkSubmitParameters"]


def test_dataproc_workflow_is_a_valid_workflow_template() -> None:
    data = _load("deploy/dataproc/workflow-template.yaml")
    template = json_format.ParseDict(data, WorkflowTemplate.pb(WorkflowTemplate()))
    assert [j.step_id for j in template.jobs] == list(JOB_NAMES)
    assert [list(j.prerequisite_step_ids) for j in template.jobs] == CHAIN
    for job in template.jobs:
        assert job.pyspark_job.main_python_file_uri.endswith(f"/jobs/{job.step_id}.py")
    with pytest.raises(json_format.ParseError, match="jbos"):
        json_format.ParseDict({**data, "jbos": []}, WorkflowTemplate.pb(WorkflowTemplate()))


def test_airflow_dag_chains_one_spark_submit_task_per_job() -> None:
    source = (REPO / "deploy/airflow/lakeforge_dag.py").read_text()
    tree = ast.parse(source)
    compile(tree, "lakeforge_dag.py", "exec")
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    steps = ast.literal_eval(assigned["STEPS"])
    assert [name for name, _ in steps] == list(JOB_NAMES)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(getattr(c.func, "id", None) == "SparkSubmitOperator" for c in calls)
    assert any(getattr(c.func, "id", None) == "chain" for c in calls)


def test_library_zip_is_reproducible_and_importable(tmp_path: Path) -> None:
    first = build(tmp_path / "a")
    second = build(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert "lakeforge/cli.py" in names and "lakeforge/log4j2.properties" in names
    assert not [n for n in names if "__pycache__" in n]
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(first)!r}); "
            "import lakeforge.cli; print(lakeforge.cli.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(first))


def test_spark_submit_line_ships_the_zip_and_the_cached_jars(tmp_path: Path) -> None:
    command = spark_submit_command(
        "train",
        master="spark://h:7077",
        root=REPO,
        py_files=tmp_path / "lakeforge.zip",
        extra=["--dataset", "conf/datasets/flights.yaml"],
    )
    assert command[:3] == ["spark-submit", "--master", "spark://h:7077"]
    assert command[command.index("--jars") + 1] == ",".join(str(p) for p in delta_jar_paths())
    assert command[command.index("--py-files") + 1] == str(tmp_path / "lakeforge.zip")
    assert command[-3:] == [str(REPO / "jobs/train.py"), "--dataset", "conf/datasets/flights.yaml"]


def test_every_environment_the_definitions_name_has_an_overlay() -> None:
    rendered = "\n".join(render.render_all(render.Options()).values())
    named = set(re.findall(r'"--env",\s*"(\w+)"', rendered))
    named |= set(re.findall(r"- --env\n\s*- (\w+)", rendered))
    assert named >= {"databricks", "emr", "dataproc", "cluster"}
    for env in named:
        settings, _ = load_settings(REPO / "conf", env)
        assert settings.lakehouse
