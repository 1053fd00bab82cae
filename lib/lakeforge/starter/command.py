"""`lakeforge init --input FILE`: profile a file's first rows, write a starter dataset config.

No Spark: the sample is read with the standard library (pyarrow for Parquet).
The config is loaded back through the config loader before it is written
(a starter config that does not validate is a bug), and an existing file is
only replaced with `--force`. A file outside the lakehouse is copied into
`<lakehouse>/_landing/NAME/` so the jobs may read it (see `_place_source` in
config/loader.py), unless `--no-copy`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePath

from lakeforge.config.loader import conf_root_for, load_dataset, load_job_config, load_settings
from lakeforge.errors import ConfigError, InputNotFound, LakeforgeError
from lakeforge.hashing import sha256_of
from lakeforge.ingest.files import local_path, resolve_source_path
from lakeforge.models.catalogue import MissingEstimator, estimator_class
from lakeforge.starter.infer import identifier
from lakeforge.starter.plan import find_column, guess_label_column, plan_features, plan_label
from lakeforge.starter.profile import profile, propose_keys
from lakeforge.starter.read import read_sample
from lakeforge.starter.render import Starter, render
from lakeforge.starter.sample import DATA_SUFFIXES, SAMPLE_ROWS
from lakeforge.storage.paths import is_uri, lakehouse_root

log = logging.getLogger("lakeforge.init")

INIT_HELP = (
    "Write a starter dataset config (conf/datasets/NAME.yaml) from a CSV, JSON-lines or "
    "Parquet file, plain or compressed, without starting Spark: delimiter, header, column "
    "names and types, null markers, a key when the sample vouches for one, features, and "
    "with --label the task and the label's mapping to classes. Only the first rows are read "
    "(--sample-rows). Lines marked REVIEW in the file are guesses to check. A file outside "
    "the lakehouse is copied into <lakehouse>/_landing/NAME/ (--no-copy: its absolute path "
    "is written instead). An existing config is replaced only with --force."
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def add_init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, metavar="FILE", help="the data file (or pkg://PACKAGE/path)"
    )
    parser.add_argument("--label", metavar="COL", help="the column to predict (header or name)")
    parser.add_argument(
        "--name", metavar="NAME", help="dataset name (default: the file's name, as identifier)"
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        help="config to write (default conf/datasets/NAME.yaml, under $LAKEFORGE_CONF_DIR if set)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing config")
    parser.add_argument(
        "--no-copy",
        action="store_true",
        help="write the file's absolute path instead of copying it into the lakehouse",
    )
    parser.add_argument(
        "--sample-rows",
        type=int,
        default=SAMPLE_ROWS,
        metavar="N",
        help=f"rows of the file to profile (default {SAMPLE_ROWS:,})",
    )


@dataclass(frozen=True)
class _Placement:
    source_path: str  # what the config says
    copy_to: Path | None  # where the file is copied first, if anywhere
    external: bool  # outside the lakehouse: the jobs need allow_external_paths


def run(args: argparse.Namespace) -> str:
    """Write the config `args` describe; return the one-line summary.

    Raises InputNotFound / UnreadableInput (the input), ConfigError (a bad
    argument, an existing output without --force, a label nothing can be
    learnt from), each naming the file.
    """
    shown: str = args.input
    path = _local_input(shown)
    name = args.name or dataset_name(path)
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: must be lowercase letters, digits and _")
    out = Path(args.out) if args.out else _default_out(name)
    if out.exists() and not args.force:
        raise ConfigError(f"{out}: already exists; --force replaces it")
    if args.sample_rows < 1:
        raise ConfigError("--sample-rows must be at least 1")
    sample = read_sample(path, shown, args.sample_rows)
    found = profile(sample)
    names = [c.name for c in found.columns]
    column = find_column(found.columns, args.label) if args.label else None
    if args.label and column is None:
        listed = ", ".join(c.header for c in found.columns)
        raise ConfigError(f"--label {args.label}: no such column in {shown} (it has: {listed})")
    note = ""
    if column is None:
        column = guess_label_column(found.columns)
        note = f"the label {column.name} was guessed from its name" if column else ""
    try:
        label = plan_label(column, names) if column else None
    except ConfigError as exc:
        raise ConfigError(f"{shown}: {exc}") from None
    taken = [*names, *([label.target] if label else [])]
    features = plan_features(found.columns, label.column if label else None, taken)
    settings, _ = load_settings(conf_root_for(out), "local")
    place = _placement(shown, path, name, lakehouse_root(settings), copy=not args.no_copy)
    starter = Starter(
        name=name,
        shown=shown,
        source_path=place.source_path,
        sample=sample,
        found=found,
        keys=propose_keys(found),
        features=features,
        label=label,
        label_note=note or ("no --label given" if label is None else ""),
        xgboost=_has_xgboost(label.task if label else "binary"),
    )
    readable = not place.external or settings.allow_external_paths
    expected = [(c.name, c.header or c.name) for c in found.columns]
    draft = _validated_draft(out, render(starter), expected, check_place=readable)
    try:
        if place.copy_to is not None:
            _copy(path, place.copy_to, force=args.force)
            log.info("copied %s to %s (source.path %s)", shown, place.copy_to, place.source_path)
    except BaseException:
        draft.unlink()
        raise
    draft.replace(out)
    if not readable:
        log.warning(
            "source.path %s is outside the lakehouse: the jobs read it only with "
            "allow_external_paths: true in conf/base.yaml",
            place.source_path,
        )
    label_text = f"{label.column} ({label.task})" if label else "none"
    keys = ", ".join(starter.keys.columns) or "none"
    return (
        f"wrote {out}: {len(found.columns)} columns, label {label_text}, keys {keys}; "
        "review the lines marked REVIEW"
    )


def dataset_name(path: Path) -> str:
    """`penguins-raw.csv.gz` → `penguins_raw`."""
    stem = PurePath(path.name)
    while stem.suffix.lower() in DATA_SUFFIXES:
        stem = stem.with_suffix("")
    name = identifier(stem.name, 1).lower()
    return name if _NAME.match(name) else f"data_{name}".strip("_")


def _local_input(shown: str) -> Path:
    path = Path(resolve_source_path(shown)).expanduser()
    if not path.exists():
        raise InputNotFound(f"{shown}: no such file")
    if path.is_dir():
        raise ConfigError(f"{shown}: a folder; give one of its files")
    if path.stat().st_size == 0:
        raise InputNotFound(f"{shown}: the file is empty: nothing to profile")
    return path


def _default_out(name: str) -> Path:
    conf = os.environ.get("LAKEFORGE_CONF_DIR")
    return (Path(conf) if conf else Path("conf")) / "datasets" / f"{name}.yaml"


def _placement(shown: str, path: Path, name: str, root: str, *, copy: bool) -> _Placement:
    """source.path: a pkg:// file as given, a file in the lakehouse relative to
    it, any other file copied into `_landing/NAME/` (or, without copy, as is)."""
    if shown.startswith("pkg://"):
        return _Placement(shown, None, external=False)
    resolved = path.resolve()
    folder = local_path(root) if root.startswith("file:") else None if is_uri(root) else Path(root)
    if folder is not None and resolved.is_relative_to(folder):
        return _Placement(resolved.relative_to(folder).as_posix(), None, external=False)
    if not copy:
        return _Placement(str(resolved), None, external=True)
    if folder is None:
        raise ConfigError(
            f"lakehouse {root} is not a local folder: copy {shown} into it yourself, "
            "or give --no-copy"
        )
    relative = f"_landing/{name}/{path.name}"
    return _Placement(relative, folder / relative, external=False)


def _validated_draft(
    out: Path, text: str, expected: list[tuple[str, str]], *, check_place: bool
) -> Path:
    """`text` written beside `out`, once it loads as a dataset config (with
    `check_place`, as a job config against its conf/) declaring the `expected`
    (name, header in the file) columns. The caller moves it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    draft = out.with_name(f".{out.name}.init")
    draft.write_text(text, encoding="utf-8")
    try:
        dataset = load_job_config(draft).dataset if check_place else load_dataset(draft)
        declared = [(c.name, c.in_file) for c in dataset.source.columns]
        if declared != expected:
            raise ConfigError(f"columns read back as {declared}, not {expected}")
    except LakeforgeError as exc:
        draft.unlink()
        raise ConfigError(
            f"{out}: the config lakeforge init wrote does not validate (a bug in init): {exc}"
        ) from None
    return draft


def _copy(path: Path, target: Path, *, force: bool) -> None:
    if target.exists():
        if sha256_of(target) == sha256_of(path):
            return
        if not force:
            raise ConfigError(f"{target}: a different file is already there; --force replaces it")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    shutil.copyfile(path, part)
    part.replace(target)


def _has_xgboost(task: str) -> bool:
    try:
        estimator_class("xgboost", task)
    except MissingEstimator:
        return False
    return True
