"""docker/ without a Docker engine: the compose file is valid against the
compose spec, everything it names exists in the repository, no credential is
written in it, and the conf overlays that point jobs at the stack validate."""

from __future__ import annotations

import importlib.resources
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from lakeforge.config.loader import load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())  # anchors and << merged
    return data


def _schema() -> dict[str, Any]:
    """The compose-spec JSON schema as vendored by check-jsonschema (PyPI)."""
    vendor = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor"
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, _schema())
    broken = {**compose, "services": {"x": {"image": "a", "comand": ["typo"]}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _schema())


def test_compose_has_the_cluster_tracking_store_and_one_shot_pipeline(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert {"spark-master", "spark-worker-1", "spark-worker-2", "mlflow", "postgres", "minio"} <= (
        set(services)
    )
    for worker in ("spark-worker-1", "spark-worker-2"):
        assert "spark://spark-master:7077" in services[worker]["command"]
    mlflow = " ".join(services["mlflow"]["command"])
    assert "postgresql://" in mlflow and "--artifacts-destination s3://" in mlflow
    pipeline = services["pipeline"]
    assert pipeline["restart"] == "no"
    assert pipeline["depends_on"]["mlflow"] == {"condition": "service_healthy"}
    command = pipeline["command"]
    assert command[:4] == ["python", "-m", "lakeforge.deploy.submit", "pipeline"]
    assert (REPO / command[command.index("--dataset") + 1]).is_file()
    assert (REPO / "conf/env" / f"{command[command.index('--env') + 1]}.yaml").is_file()


def test_compose_serves_the_champion_without_spark_after_the_pipeline(
    compose: dict[str, Any],
) -> None:
    serve = compose["services"]["serve"]
    command = serve["command"]
    assert command[:2] == ["lakeforge", "serve"]  # not spark-submit: no JVM
    assert (REPO / command[command.index("--dataset") + 1]).is_file()
    assert serve["depends_on"]["pipeline"] == {"condition": "service_completed_successfully"}
    assert serve["ports"] == ["127.0.0.1:8000:8000"]
    assert command[command.index("--port") + 1] == "8000"
    assert "/health" in " ".join(serve["healthcheck"]["test"])


def test_everything_compose_builds_from_exists(compose: dict[str, Any]) -> None:
    builds = {json.dumps(s["build"]) for s in compose["services"].values() if "build" in s}
    assert len(builds) == 1  # one image for master, workers, server and jobs
    build = json.loads(builds.pop())
    context = (COMPOSE.parent / build["context"]).resolve()
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (context / source).exists(), f"Dockerfile copies missing {source}"
    for service in compose["services"].values():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"unpinned image {image!r}"


def test_no_credential_is_written_in_compose(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert str(value).startswith("${") and ":?" in str(value), f"{name}: {key}"
    assert "docker/.env" in (REPO / ".gitignore").read_text()
    assert "docker/.env" in (REPO / ".dockerignore").read_text()


def test_secrets_script_prints_fresh_random_credentials() -> None:
    def run() -> dict[str, str]:
        out = subprocess.run(
            [str(REPO / "docker/secrets.sh")], capture_output=True, text=True, check=True
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    first, second = run(), run()
    assert set(first) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_PASSWORD"}
    assert first["POSTGRES_PASSWORD"] != second["POSTGRES_PASSWORD"]
    assert len(first["AWS_SECRET_ACCESS_KEY"]) >= 32


@pytest.mark.parametrize("env", ["cluster", "docker"])
def test_cluster_overlays_validate(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LAKEFORGE_LAKEHOUSE", "MLFLOW_TRACKING_URI", "SPARK_MASTER", "S3_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings, files = load_settings(REPO / "conf", env)
    assert files[-1] == REPO / "conf/env" / f"{env}.yaml"
    assert settings.spark.master.startswith("spark://")
    assert settings.spark.executor_wait_seconds > 0
    if env == "docker":
        assert settings.lakehouse == "s3a://lakehouse"
        assert settings.mlflow.tracking_uri == "http://mlflow:5000"
        conf = settings.spark.conf
        assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio:9000"
        assert "EnvironmentVariableCredentialsProvider" in str(
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"]
        )
        assert not [k for k in conf if SECRET_NAME.search(k.upper().replace(".", "_"))]
