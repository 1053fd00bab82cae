"""bench/scale.py's generator: the flights demo replicated N times is the demo
at 1x, keeps the dataset's keys unique, perturbs only what it says, and is
the same bytes on every run."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakeforge.ingest.files import resolve_source_path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"
KEYS = ["year", "month", "day", "carrier", "flight", "origin", "sched_dep_time"]
PERTURBED = {"year", "flight", "dep_delay", "dep_time", "arr_delay", "arr_time", "time_hour"}


def _load_bench() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the file itself
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scale = _load_bench()


@pytest.fixture(scope="module")
def source_bytes() -> bytes:
    with zipfile.ZipFile(resolve_source_path(scale.SOURCE)) as archive:
        return archive.read(archive.infolist()[0])


@pytest.fixture(scope="module")
def original(source_bytes: bytes) -> Any:
    return scale.parse(source_bytes)


@pytest.fixture(scope="module")
def sample(original: Any) -> Any:
    """Every 97th flight: all twelve months, ~3,500 rows."""
    table = original.table
    return scale.Original(original.header, table.take(list(range(0, table.num_rows, 97))))


def _replicas(folder: Path, manifest: dict) -> list[pa.Table]:
    """Each replica's rows (as text), its month files joined in written order."""
    by_replica: dict[int, list[pa.Table]] = {}
    for name in manifest["files"]:
        replica = int(name.split("-r")[1][:3])
        by_replica.setdefault(replica, []).append(scale.parse((folder / name).read_bytes()).table)
    return [pa.concat_tables(by_replica[r]) for r in sorted(by_replica)]


def _ints(column: pa.ChunkedArray) -> np.ndarray:
    return np.array([int(v) for v in column.to_pylist()])


def _na(column: pa.ChunkedArray) -> np.ndarray:
    return np.array([v == "NA" for v in column.to_pylist()])


def _minutes(hhmm: np.ndarray) -> np.ndarray:
    return (hhmm // 100) * 60 + hhmm % 100


def test_replica_zero_is_the_demo_file_byte_for_byte(
    tmp_path: Path, original: Any, source_bytes: bytes
) -> None:
    manifest = scale.generate(tmp_path / "landing", 2, original)
    header = source_bytes.split(b"\n", 1)[0] + b"\n"
    body = b""
    for name in manifest["files"]:
        data = (tmp_path / "landing" / name).read_bytes()
        assert data.startswith(header)
        if "-r000-" in name:
            body += data[len(header) :]
    assert header + body == source_bytes
    assert manifest["rows"] == 2 * 336_776


def test_every_replica_has_the_original_row_count(tmp_path: Path, sample: Any) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    replicas = _replicas(tmp_path / "landing", manifest)
    n = sample.table.num_rows
    assert [t.num_rows for t in replicas] == [n, n, n]
    assert manifest["rows"] == 3 * n


def test_one_file_per_replica_and_month(tmp_path: Path, sample: Any) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    expected = {f"flights-r{r:03d}-m{m:02d}.csv" for r in range(3) for m in range(1, 13)}
    written = {p.name for p in (tmp_path / "landing").iterdir()} - {scale.MANIFEST}
    assert set(manifest["files"]) == expected == written
    for name in expected:
        months = scale.parse((tmp_path / "landing" / name).read_bytes()).table["month"]
        assert set(months.to_pylist()) == {str(int(name[-6:-4]))}


def test_keys_are_unique_across_replicas_even_without_the_year(tmp_path: Path, sample: Any) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    rows = pa.concat_tables(_replicas(tmp_path / "landing", manifest))
    for keys in (KEYS, [k for k in KEYS if k != "year"]):
        distinct = rows.group_by(keys).aggregate([]).num_rows
        assert distinct == rows.num_rows, keys


def test_later_replicas_shift_year_flight_and_time_hour(tmp_path: Path, sample: Any) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    base = sample.table
    for r, rows in enumerate(_replicas(tmp_path / "landing", manifest)):
        assert (_ints(rows["year"]) == _ints(base["year"]) + r).all()
        assert (_ints(rows["flight"]) == _ints(base["flight"]) + 10_000 * r).all()
        stamps, before = rows["time_hour"].to_pylist(), base["time_hour"].to_pylist()
        assert all(
            int(a[:4]) == int(b[:4]) + r and a[4:] == b[4:]
            for a, b in zip(stamps, before, strict=True)
        )
        for name in set(base.column_names) - PERTURBED:
            assert rows[name].equals(base[name]), name


def test_delays_move_by_at_most_three_minutes_with_their_clock_times_and_na_stays_na(
    tmp_path: Path, sample: Any
) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    base = sample.table
    for rows in _replicas(tmp_path / "landing", manifest)[1:]:
        for delay, clock in (("dep_delay", "dep_time"), ("arr_delay", "arr_time")):
            assert (_na(rows[delay]) == _na(base[delay])).all()
            assert (_na(rows[clock]) == _na(base[clock])).all()
            keep = pc.invert(pa.array(_na(base[delay]) | _na(base[clock])))
            moved = _ints(rows[delay].filter(keep)) - _ints(base[delay].filter(keep))
            assert set(moved) == set(range(-3, 4))  # every shift occurs, 0 included
            assert 0.1 < (moved == 0).mean() < 0.2
            new_clock, old_clock = _ints(rows[clock].filter(keep)), _ints(base[clock].filter(keep))
            assert ((_minutes(new_clock) - _minutes(old_clock) - moved) % 1440 == 0).all()
            assert new_clock.min() >= 1 and new_clock.max() <= 2400
            assert (new_clock % 100 < 60).all()


def test_replicas_are_jittered_independently(tmp_path: Path, sample: Any) -> None:
    manifest = scale.generate(tmp_path / "landing", 3, sample)
    base = sample.table
    _, one, two = _replicas(tmp_path / "landing", manifest)
    known = pc.invert(pa.array(_na(base["dep_delay"]) | _na(base["arr_delay"])))

    def shift(rows: Any, column: str) -> Any:
        return _ints(rows[column].filter(known)) - _ints(base[column].filter(known))

    # another replica, another jitter; departure and arrival each their own
    assert (shift(one, "dep_delay") != shift(two, "dep_delay")).mean() > 0.5
    assert (shift(one, "dep_delay") != shift(one, "arr_delay")).mean() > 0.5


def test_same_size_gives_the_same_bytes(tmp_path: Path, sample: Any) -> None:
    first = scale.generate(tmp_path / "a", 3, sample)
    second = scale.generate(tmp_path / "b", 3, sample)
    assert first["files"] == second["files"]
    for name in [*first["files"], scale.MANIFEST]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_complete_folder_is_reused_and_another_size_rebuilt(tmp_path: Path, sample: Any) -> None:
    folder = tmp_path / "landing"
    scale.generate(folder, 2, sample)
    assert scale.landing_complete(folder, 2)
    assert scale.generate(folder, 2, sample)["seconds"] == 0.0
    assert not scale.landing_complete(folder, 3)
    rebuilt = scale.generate(folder, 3, sample)
    assert len(rebuilt["files"]) == 36 and scale.landing_complete(folder, 3)
    (folder / rebuilt["files"][-1]).unlink()  # a file lost: no longer complete
    assert not scale.landing_complete(folder, 3)
    assert not (tmp_path / "landing.part").exists()
