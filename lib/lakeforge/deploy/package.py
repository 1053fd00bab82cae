"""The library as one zip for `spark-submit --py-files`.

Executors import lakeforge when a task runs Python code of ours (custom
transformers, probes). The zip holds the `lakeforge` package only; its
third-party dependencies must already be on the cluster's Python (the Docker
image, a Databricks/EMR/Dataproc runtime plus `requirements.lock`). Entries
are written in sorted order with a fixed timestamp, so the same code gives
byte-identical zips and a scheduler can tell that nothing changed.

    python -m lakeforge.deploy.package   # dist/lakeforge-<version>.zip and dist/conf.zip
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import lakeforge

_EPOCH = (2020, 1, 1, 0, 0, 0)
_SKIP = {"__pycache__"}


def package_dir() -> Path:
    return Path(lakeforge.__file__).resolve().parent


def build(out_dir: Path) -> Path:
    """Write `lakeforge-<version>.zip` into out_dir (replacing it) and return its path."""
    target = out_dir / f"lakeforge-{lakeforge.__version__}.zip"
    return _zip(package_dir(), "lakeforge/", target)


def build_conf(conf_dir: Path, out_dir: Path) -> Path:
    """Write `conf.zip`: the conf folder's files at the top level, so that
    `--archives .../conf.zip#conf` unpacks them as `./conf` beside the driver."""
    return _zip(conf_dir, "", out_dir / "conf.zip")


def _zip(source: Path, prefix: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not _SKIP.intersection(p.parts) and p.suffix != ".pyc"
    )
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            info = zipfile.ZipInfo(prefix + path.relative_to(source).as_posix(), _EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    partial.replace(target)  # never a half-written zip under the real name
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakeforge.deploy.package",
        description="Build the lakeforge zip for spark-submit --py-files (and conf.zip for "
        "--archives) and print their paths.",
    )
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("--conf", default="conf", help="conf folder to zip (default: conf)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    sys.stdout.write(f"{build(out)}\n")
    if Path(args.conf).is_dir():
        sys.stdout.write(f"{build_conf(Path(args.conf), out)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
