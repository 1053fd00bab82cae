"""Security basics, before Spark starts: config paths stay inside the
lakehouse unless allowed, credentials never reach our output, and SQL from
config is only ever an expression."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
import yaml

from lakeforge import secrets
from lakeforge.cli import main
from lakeforge.config import load_job_config
from lakeforge.errors import ConfigError
from lakeforge.logs import configure
from tests.helpers import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _dataset(tmp_path: Path, source_path: str, allow: bool | None = None) -> Path:
    conf = tmp_path / "conf"
    path = write_dataset(conf, source_path)
    base: dict[str, object] = {"lakehouse": str(tmp_path / "lake")}
    if allow is not None:
        base["allow_external_paths"] = allow
    (conf / "base.yaml").write_text(yaml.safe_dump(base))
    return path


@pytest.fixture
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LAKEFORGE_LAKEHOUSE", "MLFLOW_TRACKING_URI", "LAKEFORGE_CONF_DIR"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("no_env_overrides")
@pytest.mark.parametrize(
    "given",
    ["/etc/passwd", "../outside/trips.csv", "landing/../../outside.csv", "s3a://other/raw/"],
)
def test_a_source_path_outside_the_lakehouse_is_refused_unless_allowed(
    tmp_path: Path, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = _dataset(tmp_path, given)
    with pytest.raises(ConfigError, match=r"source.path: .* is outside the lakehouse"):
        load_job_config(dataset)
    assert main(["ingest", "--dataset", str(dataset)]) == 2  # before Spark starts
    assert "allow_external_paths: true" in capsys.readouterr().err

    allowed = _dataset(tmp_path, given, allow=True)
    assert load_job_config(allowed).dataset.source.path is not None


@pytest.mark.usefixtures("no_env_overrides")
def test_relative_source_paths_are_read_from_inside_the_lakehouse(tmp_path: Path) -> None:
    cfg = load_job_config(_dataset(tmp_path, "landing/trips/"))
    assert cfg.dataset.source.path == f"{tmp_path}/lake/landing/trips"
    inside = load_job_config(_dataset(tmp_path, f"{tmp_path}/lake/landing/x.csv"))
    assert inside.dataset.source.path == f"{tmp_path}/lake/landing/x.csv"
    shipped = load_job_config(REPO / "conf/datasets/flights.yaml")
    assert str(shipped.dataset.source.path).startswith("pkg://")


def test_secret_values_are_scrubbed_from_log_lines_and_cli_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary = "canary-7f3a9c1e-not-a-real-password"
    monkeypatch.setenv("SHOP_DB_PASSWORD", canary)
    configure("INFO")  # reads the secret-looking variables of the environment
    # What lakeforge's log handler writes for a line that holds the secret.
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_lakeforge", False))
    record = logging.LogRecord(
        "lakeforge.test", logging.INFO, __file__, 1, "with %s", (canary,), None
    )
    assert handler.filter(record)
    assert handler.format(record).endswith("lakeforge.test: with ***")
    # A config that references the secret where it does not belong: the error
    # names the key, never the value.
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in.csv", name="trips")
    data = yaml.safe_load(dataset.read_text())
    data["source"]["csv"] = {"delimiter": "${SHOP_DB_PASSWORD}"}
    dataset.write_text(yaml.safe_dump(data))
    assert main(["ingest", "--dataset", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert "csv.delimiter" in err
    assert canary not in err
    assert secrets.scrub(f"x {canary} y") == "x *** y"


def test_sql_from_config_is_only_used_as_expressions() -> None:
    """No module builds a SQL statement: there is no `spark.sql(...)` call in the
    code, and config text reaches Spark only through expression APIs
    (F.expr / DataFrame.where), which parse one expression and nothing else.
    (A call without arguments, e.g. a parsed Catalyst node's `.sql()` rendering
    itself for a message, runs nothing.)"""
    calls = []
    for path in sorted((REPO / "lib/lakeforge").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("sql", "selectExpr")
                and (node.args or node.keywords)
            ):
                calls.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert calls == []


@pytest.mark.parametrize(
    "field, text",
    [
        ("rules", [{"name": "r", "type": "sql", "expression": "1 = 1; DROP TABLE silver"}]),
        ("clean", {"derive": {"d": "id) FROM x; DELETE FROM silver WHERE (1"}}),
        ("clean", {"derive": {"d": "1 AS a FROM other_table"}}),
        ("clean", {"derive": {"d": "id -- AS d FROM __THIS__"}}),
        ("clean", {"dedupe": {"order_by": ["id) DESC, (id"]}}),
    ],
)
def test_a_statement_smuggled_into_an_expression_is_a_config_error(
    field: str, text: object, tmp_path: Path
) -> None:
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in.csv", extra={field: text})
    with pytest.raises(ConfigError, match="not a single SQL expression"):
        load_job_config(dataset)


def test_every_value_a_config_keeps_out_of_the_file_is_scrubbed_as_a_whole_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only names that look secret, not only long values: `${SHOP_DSN}`
    set to a short `k9x` is scrubbed, where it stands as a token (not inside
    `k9xylophone`); a value written with a default beside it is a setting."""
    monkeypatch.setenv("SHOP_DSN", "k9x")
    monkeypatch.setenv("SHOP_REGION", "eu-west-9")
    dataset = write_dataset(tmp_path / "conf", tmp_path / "in.csv", name="trips")
    data = yaml.safe_load(dataset.read_text())
    data["description"] = "shop ${SHOP_DSN} in ${SHOP_REGION:-eu-west-1}"
    dataset.write_text(yaml.safe_dump(data))
    load_job_config(dataset)
    assert secrets.scrub("dsn=k9x; k9xylophone (k9x)") == "dsn=***; k9xylophone (***)"
    assert secrets.scrub("region eu-west-9") == "region eu-west-9"


def test_candidate_params_reach_mlflow_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A candidate's params come from the config and may hold a referenced
    value; what MLflow stores (a real sqlite store) is scrubbed."""
    import mlflow
    from mlflow import MlflowClient

    from lakeforge.tracking import runs

    canary = "zq-canary-31"
    secrets.register(canary)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    mlflow.set_experiment("security")  # not an earlier test's experiment id
    with mlflow.start_run() as run:
        runs.log_params({"objective": f"reg:{canary}", "depth": 3})
        runs.set_tags({"note": f"from {canary}"})
        runs.log_json({"source": canary}, "config/x.json")
    stored = MlflowClient().get_run(run.info.run_id).data
    assert stored.params == {"objective": "reg:***", "depth": "3"}
    assert stored.tags["note"] == "from ***"
    text = (
        Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id)) / "config/x.json"
    ).read_text()
    assert canary not in text and "***" in text


def test_numbers_are_settings_and_read_back_lineage_is_never_half_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`${CUTOFF}` = 2008 is a setting, not scrubbed (it would blank versions
    and counts everywhere); a referenced value inside what predict and
    monitor read back from MLflow (`where`) is refused, not logged broken;
    a secret holding a quote is scrubbed before JSON escapes it."""
    import mlflow

    from lakeforge.tracking import runs

    secrets.register("2008")
    assert secrets.scrub("year <= 2008, silver v2008") == "year <= 2008, silver v2008"
    quoted = 'pa"ss\\w0rd'
    secrets.register(quoted)
    secrets.register("eu-zone-7")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlruns.db")
    mlflow.set_experiment("security")  # not an earlier test's experiment id
    with mlflow.start_run() as run:
        with pytest.raises(ConfigError, match=r"MLflow where = .*cannot be hidden"):
            runs.log_params({"where": "region = 'eu-zone-7'"})
        runs.log_json({"password": quoted}, "config/x.json")
    stored = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id)) / "config/x.json"
    assert "w0rd" not in stored.read_text() and "***" in stored.read_text()


def test_the_jvm_log_pattern_hides_what_scrub_hides_and_cannot_break_its_layout() -> None:
    """Spark's console log scrubs with `java_pattern` inside a log4j
    `%replace{...}{pattern}{***}`: a value holding `}`, `${`, `%` or regex
    syntax appears only as `\\uXXXX` escapes, and the pattern (Java's `\\u`
    escapes and lookarounds read the same in Python) matches as scrub does."""
    import re

    odd = "z}${env:HOME}%n.*(q"
    secrets.register(odd)
    secrets.register("k8v")
    pattern = secrets.java_pattern()
    assert not set("{}$%") & set(pattern)
    text = f"a {odd} b; k8v (k8v) k8vz"
    assert re.sub(pattern, "***", text) == secrets.scrub(text) == "a *** b; *** (***) k8vz"
