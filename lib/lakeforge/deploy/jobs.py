"""The one list of scheduled jobs, and the spark-submit line of each.

Every deployment definition (Databricks bundle, EMR steps, Dataproc workflow,
Airflow DAG) is rendered from `JOBS` by `lakeforge.deploy.render`, and a test
checks the committed files against it, so a new step cannot be forgotten in
one of them. `pipeline` is not in the list: schedulers run the steps as
separate tasks, so a failed step is retried alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lakeforge.jars import delta_jar_paths

LOG4J = Path(__file__).resolve().parents[1] / "log4j2.properties"


@dataclass(frozen=True)
class Job:
    name: str
    summary: str
    # Steps that must have succeeded first (each depends on the one before).
    after: tuple[str, ...] = ()

    @property
    def script(self) -> str:
        """The entry point, relative to the project root."""
        return f"jobs/{self.name}.py"


JOBS: tuple[Job, ...] = (
    Job("ingest", "raw files to bronze (bad rows to bronze_quarantine)"),
    Job("clean", "bronze to silver: rules, dedupe, MERGE", ("ingest",)),
    Job("train", "search, evaluate, register; champion gate", ("clean",)),
    Job("predict", "score the batch with the champion into gold", ("train",)),
    Job("monitor", "drift of the batch vs the training snapshot (exit 5: retrain)", ("predict",)),
)

JOB_NAMES = tuple(job.name for job in JOBS)


def job_arguments(dataset: str, env: str) -> list[str]:
    """The arguments every job takes (see `lakeforge.cli.add_job_arguments`)."""
    return ["--dataset", dataset, "--env", env]


def spark_submit_command(
    job: str,
    *,
    master: str,
    root: Path,
    py_files: Path,
    extra: list[str] | None = None,
    conf: dict[str, str] | None = None,
    jar_extras: tuple[str, ...] = (),
) -> list[str]:
    """argv of `spark-submit` for one job: Delta jars from the local cache with
    `--jars` (no network at run time), the library zip with `--py-files`, and
    `extra`, the job's own arguments (`--dataset FILE --env cluster`);
    `jar_extras=("s3",)` adds the S3A jars for an s3a:// lakehouse."""
    command = [
        "spark-submit",
        "--master",
        master,
        "--jars",
        ",".join(str(p) for p in delta_jar_paths(extras=jar_extras)),
        "--py-files",
        str(py_files),
        # Spark's own start-up lines at WARN from the first one (the job's
        # log level applies only once its session exists)
        "--driver-java-options",
        f"-Dlog4j.configurationFile=file:{LOG4J}",
    ]
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(root / "jobs" / f"{job}.py"), *(extra or [])]
