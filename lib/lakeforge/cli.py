"""`lakeforge STEP --dataset FILE`: the command line, and the one place that
turns errors into a one-line message and an exit code (see errors.py).

`jobs/STEP.py` calls `run_job` with the same arguments under spark-submit.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from lakeforge import __version__, secrets
from lakeforge.config import JobConfig, load_job_config
from lakeforge.errors import LakeforgeError
from lakeforge.logs import configure
from lakeforge.spark import build_session
from lakeforge.starter.command import INIT_HELP, add_init_arguments
from lakeforge.storage.paths import is_uri, lakehouse_root

log = logging.getLogger("lakeforge")

StepFn = Callable[[SparkSession, JobConfig, argparse.Namespace], None]


def _ingest(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import ingest

    ingest.run(spark, cfg, input_path=args.input, batch_id=args.batch_id)


def _clean(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import clean

    clean.run(spark, cfg, batch_id=args.batch_id)


def _train(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import train

    train.run(spark, cfg)


def _predict(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import predict

    predict.run(spark, cfg, batch_id=args.batch_id)


def _monitor(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import monitor

    monitor.run(spark, cfg, batch_id=args.batch_id, source=args.source)


def _pipeline(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import pipeline

    pipeline.run(
        spark,
        cfg,
        input_path=args.input,
        batch_id=args.batch_id,
        retrain_on_drift=getattr(args, "retrain_on_drift", False),
    )


def _maintain(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import maintain

    maintain.run(spark, cfg, retain_hours=args.retain_hours)


def _forget(spark: SparkSession, cfg: JobConfig, args: argparse.Namespace) -> None:
    from lakeforge.steps import forget

    forget.run(
        spark,
        cfg,
        where=args.where,
        keys_file=args.keys,
        force=args.force,
        any_column=args.any_column,
    )


STEPS: dict[str, tuple[StepFn, str]] = {
    "ingest": (
        _ingest,
        "Read the new raw files of the dataset's source (or --input), or the new rows of "
        "its database table (source.format jdbc), into the bronze Delta table; rows that "
        "cannot be parsed go to bronze_quarantine with a reason. Files and watermark "
        "windows already ingested are skipped, so a re-run adds nothing.",
    ),
    "clean": (
        _clean,
        "Clean the bronze batches not yet in silver (or --batch-id): normalise, check the "
        "data-quality rules, deduplicate on the keys and MERGE into the silver Delta table; "
        "rows failing a drop rule go to silver_quarantine with the rule names. A rule of "
        "severity fail stops the job (exit 4) before silver changes (a unique rule on the "
        "keys is checked on silver after the MERGE, which it then undoes).",
    ),
    "train": (
        _train,
        "Train a model on the silver table: deterministic split, cross-validated search "
        "over the dataset's model catalogue, evaluation on the test split, an MLflow run "
        "with the model, registered; the champion alias moves only if it beats the "
        "champion on the same test rows. Skipped when this silver version and config "
        "already have a model.",
    ),
    "predict": (
        _predict,
        "Score the silver rows of predict.where with the champion model (or "
        "predict.model_version) into the gold predictions Delta table, with lineage "
        "columns. --batch-id names the batch (default silver-vN); re-running a batch "
        "replaces its rows, or does nothing if the same model already scored it.",
    ),
    "monitor": (
        _monitor,
        "Drift (PSI, KS) of every model input and of the prediction between the model's "
        "train-split profile and a scored batch (--batch-id, default the latest), and the "
        "batch's metrics once labels exist; rows to the monitoring Delta table and MLflow. "
        "Exit 5 when a PSI passes monitor.psi_threshold (time to retrain).",
    ),
    "pipeline": (
        _pipeline,
        "Run every step in order on the dataset: ingest, clean, train, predict, monitor. "
        "With --retrain-on-drift, drift past the threshold retrains on the training rows "
        "plus the drifted batch and rescores it if the new model wins, instead of exit 5.",
    ),
}

# Run on a schedule of their own, outside the chain of steps (lakeforge.deploy.jobs)
UPKEEP: dict[str, tuple[StepFn, str]] = {
    "maintain": (
        _maintain,
        "OPTIMIZE (compact small files) then VACUUM every Delta table of the dataset, "
        "keeping readable every table version a registered model version (not archived) "
        "was trained on: the retention covers the oldest such version plus a week, and "
        "each table's file and log retention properties are set to match. --retain-hours "
        "that would delete a pinned version is refused (exit 2) before any table changes.",
    ),
    "forget": (
        _forget,
        "Erase a subject (--where \"customer_id = 'C-1'\", or --keys FILE: a CSV whose header "
        "names the columns, a subject per row) from every Delta table of the dataset that holds "
        "rows about people: bronze, silver, both quarantines, splits, predictions, "
        "online_predictions. Values are given in clear (pseudonymised columns are matched on "
        "the pseudonym too). Each table that held the subject keeps only its version after "
        "the erasure (VACUUM with 0 hours, older log deleted); a version a registered model "
        "was trained on is refused (exit 2) unless --force. Recorded in NAME/_forget_audit "
        "without the values.",
    ),
}
COMMANDS = {**STEPS, **UPKEEP}

EPILOG = """exit codes: 0 done; 2 bad config or arguments (or input path not found);
3 input does not match the schema or cannot be read; 4 a data-quality rule of
severity fail fired; 5 drift past the threshold; 1 anything else.

environment: LAKEFORGE_LAKEHOUSE (table root, default ./lakehouse),
MLFLOW_TRACKING_URI (default sqlite:///mlruns.db), LAKEFORGE_CONF_DIR,
LAKEFORGE_JARS_DIR."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakeforge",
        description="Batch ML on Spark and Delta Lake: raw files to bronze, silver, "
        "model, predictions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lakeforge {__version__}")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, (_, help_text) in COMMANDS.items():
        sub = steps.add_parser(
            name,
            help=help_text.split(". ")[0],
            description=help_text,
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_job_arguments(sub, batches=name in STEPS)
        if name == "pipeline":
            add_pipeline_arguments(sub)
        if name == "maintain":
            add_maintain_arguments(sub)
        if name == "forget":
            add_forget_arguments(sub)
        if name == "monitor":
            add_monitor_arguments(sub)
    doctor = steps.add_parser(
        "doctor",
        help="Check that this machine can run the jobs",
        description=DOCTOR_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument(
        "--dataset", metavar="FILE", help="also validate this dataset config (and use its conf/)"
    )
    doctor.add_argument(
        "--env", default="local", metavar="ENV", help="environment overlay to check (local)"
    )
    serve = steps.add_parser(
        "serve",
        help="Answer predictions over HTTP with the champion, without Spark",
        description=SERVE_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_job_arguments(serve, batches=False)
    add_serve_arguments(serve)
    init = steps.add_parser(
        "init",
        help="Write a starter dataset config from a data file",
        description=INIT_HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_init_arguments(init)
    return parser


DOCTOR_HELP = (
    "Check, without starting Spark, that this machine can run the jobs: Python and Java, "
    "pyspark/delta-spark/MLflow/Great Expectations versions against the supported matrix, "
    "the Delta jars, the Spark master of --env, the lakehouse (writable) and the MLflow "
    "tracking store (reachable). Prints a fix for each failed check; exit 1 if any failed."
)


SERVE_HELP = (
    "Serve the dataset's registered model (the version --alias names, default champion) "
    "over HTTP from its ONNX form, with no Spark and no JVM: POST /predict (one record or a "
    "list, the silver columns the model reads), GET /health, GET /metadata. Follows the "
    "alias and switches to a new version without failing a request; appends every answer "
    "to the Delta table NAME/online_predictions (monitor --source online reads it)."
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alias", default="champion", help="registry alias to serve (champion)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    parser.add_argument(
        "--max-batch", type=int, default=1000, metavar="N", help="records per request (1000)"
    )
    parser.add_argument(
        "--reload-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="how often to check the alias for a new version (10; 0: never)",
    )
    parser.add_argument(
        "--no-inference-log",
        action="store_true",
        help="do not append answers to NAME/online_predictions",
    )


def _serve(args: argparse.Namespace) -> int:
    """`lakeforge serve`: no Spark session, like doctor and init."""
    from lakeforge.steps import serve

    configure()
    cfg: JobConfig | None = None
    try:
        cfg = load_job_config(args.dataset, args.env)
        configure(cfg.settings.log_level)
        options = serve.ServeOptions(
            alias=args.alias,
            host=args.host,
            port=args.port,
            max_batch=args.max_batch,
            reload_seconds=args.reload_seconds,
            inference_log=not args.no_inference_log,
        )
        serve.run(cfg, options)
    except LakeforgeError as exc:
        sys.stderr.write(secrets.scrub(f"lakeforge serve: error: {exc}\n"))
        return exc.exit_code
    except Exception as exc:
        return _unexpected("serve", cfg, exc, debug=args.debug)
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from lakeforge.config.loader import conf_root_for, load_dataset, load_settings
    from lakeforge.doctor import report, run_checks

    configure()
    try:
        if args.dataset:
            load_dataset(Path(args.dataset))
            root = conf_root_for(Path(args.dataset))
        else:
            root = Path(os.environ.get("LAKEFORGE_CONF_DIR", "conf"))
        settings, _ = load_settings(root, args.env)
    except LakeforgeError as exc:
        sys.stderr.write(f"lakeforge doctor: error: {exc}\n")
        return exc.exit_code
    checks = run_checks(settings)
    sys.stdout.write(report(checks))
    return 0 if all(c.ok for c in checks) else 1


def _init(args: argparse.Namespace) -> int:
    """`lakeforge init`: no Spark session, like doctor."""
    from lakeforge.starter.command import run

    configure()
    try:
        summary = run(args)
    except LakeforgeError as exc:
        sys.stderr.write(f"lakeforge init: error: {exc}\n")
        return exc.exit_code
    sys.stdout.write(summary + "\n")
    return 0


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retrain-on-drift",
        action="store_true",
        help="when monitor finds drift, retrain (training rows + the batch) instead of exit 5",
    )


def add_monitor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=("batch", "online"),
        default="batch",
        help="batch: gold predictions (default); online: what `lakeforge serve` answered, "
        "a batch per UTC day (online-YYYY-MM-DD)",
    )


def add_maintain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retain-hours",
        type=_hours,
        metavar="N",
        help="VACUUM retention in hours (default: 168, raised to keep every version a "
        "registered model pinned); refused when it would delete one",
    )


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--where",
        metavar="EXPR",
        help="the subject: column = 'value' joined by AND (several columns) or OR (several "
        "subjects), or column IN ('a', 'b'); values in clear",
    )
    who.add_argument(
        "--keys",
        metavar="FILE",
        help="CSV file: a header naming the columns, then one subject per row (values in clear)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="erase even table versions registered model versions were trained on (they are "
        "tagged lakeforge.forget and can no longer be reproduced)",
    )
    parser.add_argument(
        "--any-column",
        action="store_true",
        help="accept request columns that are neither keys nor declared under privacy.columns "
        "(every row holding the value is erased, whoever it is about)",
    )


def _hours(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of hours")
    return int(text)


def add_job_arguments(parser: argparse.ArgumentParser, *, batches: bool = True) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="FILE",
        help="dataset config, e.g. conf/datasets/flights.yaml",
    )
    parser.add_argument(
        "--env",
        default="local",
        metavar="ENV",
        help="environment overlay conf/env/ENV.yaml (default: local)",
    )
    if batches:
        add_batch_arguments(parser)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="print the traceback of an unexpected error on the terminal too",
    )


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-id",
        metavar="ID",
        help="id recorded on every row of this batch (default: UTC time of planning)",
    )
    parser.add_argument(
        "--input",
        metavar="PATH",
        help="file, folder or glob to ingest instead of the dataset's source.path",
    )


def run_job(step: str, argv: Sequence[str]) -> int:
    """Parse `argv` for `step`, run it, and return the process exit code."""
    parser = argparse.ArgumentParser(prog=f"jobs/{step}.py", description=COMMANDS[step][1])
    add_job_arguments(parser, batches=step in STEPS)
    if step == "pipeline":
        add_pipeline_arguments(parser)
    if step == "maintain":
        add_maintain_arguments(parser)
    if step == "forget":
        add_forget_arguments(parser)
    if step == "monitor":
        add_monitor_arguments(parser)
    return _run(step, parser.parse_args(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.step == "serve":  # no Spark: the ONNX model and delta-rs
        return _serve(args)
    if args.step in ("doctor", "init"):  # no Spark, no dataset config to load first
        try:
            return _doctor(args) if args.step == "doctor" else _init(args)
        except Exception as exc:
            return _unexpected(args.step, None, exc, debug=None)
    return _run(args.step, args)


def _run(step: str, args: argparse.Namespace) -> int:
    configure()
    cfg: JobConfig | None = None
    try:
        cfg = load_job_config(args.dataset, args.env)  # before Spark: bad config fails fast
        configure(cfg.settings.log_level)
        spark = build_session(cfg.settings, app_name=f"lakeforge-{step}-{cfg.dataset.name}")
        COMMANDS[step][0](spark, cfg, args)
    except LakeforgeError as exc:
        sys.stderr.write(secrets.scrub(f"lakeforge {step}: error: {exc}\n"))
        return exc.exit_code
    except Exception as exc:
        return _unexpected(step, cfg, exc, debug=getattr(args, "debug", False))
    return 0


def _unexpected(step: str, cfg: JobConfig | None, exc: BaseException, *, debug: bool | None) -> int:
    """A bug or an unforeseen failure: one line on the terminal, the traceback
    in a file (and on the terminal too with `--debug`; None: the command has
    no such flag); exit 1."""
    where = crash_report(step, cfg, exc)
    if debug:  # scrubbed like the file: a message or a note may quote a secret
        sys.stderr.write(secrets.scrub("".join(traceback.format_exception(exc))))
    hint = "" if debug is None else ", or rerun with --debug"
    place = f"the traceback is in {where}" if where else "the traceback could not be saved"
    sys.stderr.write(
        secrets.scrub(
            f"lakeforge {step}: error: {type(exc).__name__}: {_first_line(exc)} "
            f"(unexpected; {place}{hint})\n"
        )
    )
    return 1


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's text, short enough for a terminal line
    (a Java error's text is its whole stack)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return first if len(first) <= 300 else first[:297] + "..."


def crash_report(step: str, cfg: JobConfig | None, exc: BaseException) -> Path | None:
    """Write `exc`'s traceback (scrubbed of secrets) to a log file and return
    its path (None when it cannot be written): `<lakehouse>/_logs/` for a
    local lakehouse, else the temp folder."""
    root = Path(tempfile.gettempdir()) / "lakeforge-logs"
    if cfg is not None and not is_uri(lakehouse_root(cfg.settings)):
        root = Path(lakehouse_root(cfg.settings)) / "_logs"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = root / f"{step}-{stamp}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    try:
        root.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.scrub(text), encoding="utf-8")
    except OSError as problem:
        log.warning("could not write the crash report to %s: %s", path, problem)
        return None
    log.debug("%s", secrets.scrub(text))
    return path
