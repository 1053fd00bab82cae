"""`spark-submit` one lakeforge job to a cluster, packaged the documented way.

Builds the library zip (`--py-files`), takes the Delta jars from the local
cache (`--jars`, no network at run time) and runs the job's entry point:

    python -m lakeforge.deploy.submit pipeline --master spark://127.0.0.1:7077 \\
        -- --dataset conf/datasets/flights.yaml --retrain-on-drift

`--print` shows the command instead of running it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from lakeforge.cli import STEPS
from lakeforge.deploy.jobs import spark_submit_command
from lakeforge.deploy.package import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakeforge.deploy.submit",
        description="spark-submit a lakeforge job with its zip and the cached Delta jars.",
    )
    parser.add_argument("job", choices=sorted(STEPS))
    parser.add_argument(
        "--master",
        default=os.environ.get("SPARK_MASTER", "spark://127.0.0.1:7077"),
        help="Spark master URL (default: $SPARK_MASTER or spark://127.0.0.1:7077)",
    )
    parser.add_argument("--root", default=".", help="the project folder (jobs/, conf/)")
    parser.add_argument(
        "--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting"
    )
    parser.add_argument(
        "--with",
        dest="jar_extras",
        action="append",
        default=[],
        choices=["s3"],
        help="also ship the jars of an extra: s3 (S3A, for an s3a:// lakehouse)",
    )
    parser.add_argument("--print", action="store_true", help="print the command, do not run it")
    parser.add_argument(
        "job_args", nargs=argparse.REMAINDER, help="after --: the job's arguments (--dataset ...)"
    )
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    conf = dict(item.split("=", 1) for item in args.conf)
    zip_path = build(root / "dist")
    command = spark_submit_command(
        args.job,
        master=args.master,
        root=root,
        py_files=zip_path,
        conf=conf,
        extra=job_args,
        jar_extras=tuple(args.jar_extras),
    )
    if args.print:
        sys.stdout.write(shlex.join(command) + "\n")
        return 0
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark_submit = Path(sys.executable).with_name("spark-submit")
    os.execv(str(spark_submit), [str(spark_submit), *command[1:]])


if __name__ == "__main__":
    sys.exit(main())
