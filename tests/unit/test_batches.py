"""Batch planning: new files only, crashed batches resume with the same files."""

from __future__ import annotations

from datetime import datetime

import pytest

from lakeforge.errors import ConfigError, InputNotFound
from lakeforge.ingest.batches import DONE, FAILED, PLANNED, log_rows_for, plan_batch
from lakeforge.ingest.batches import LOG_SCHEMA as SCHEMA
from lakeforge.ingest.files import InputFile

NOW = datetime(2026, 1, 2, 3, 4, 5)


def _file(name: str, checksum: str = "c1") -> InputFile:
    return InputFile(
        path=f"file:/in/{name}", size=10, checksum=checksum, readable=f"file:/in/{name}"
    )


def _log(batch: object, status: str) -> list[dict[str, object]]:
    names = SCHEMA.fieldNames()
    return [dict(zip(names, row, strict=True)) for row in log_rows_for(batch, status, NOW)]  # type: ignore[arg-type]


def test_first_run_plans_every_file_as_batch_1_with_a_time_based_id() -> None:
    batch = plan_batch([], [_file("a"), _file("b")], None, NOW)
    assert batch is not None
    assert (batch.seq, batch.batch_id, len(batch.files)) == (1, "20260102T030405Z", 2)


def test_done_files_are_skipped_and_only_new_ones_planned() -> None:
    first = plan_batch([], [_file("a")], "b1", NOW)
    assert first is not None
    log = _log(first, PLANNED) + _log(first, DONE)
    second = plan_batch(log, [_file("a"), _file("b")], "b2", NOW)
    assert second is not None
    assert (second.seq, second.batch_id, [f.path for f in second.files]) == (
        2,
        "b2",
        ["file:/in/b"],
    )
    assert plan_batch(log, [_file("a")], None, NOW) is None


def test_a_changed_file_is_ingested_again() -> None:
    first = plan_batch([], [_file("a", "c1")], "b1", NOW)
    log = _log(first, PLANNED) + _log(first, DONE)
    again = plan_batch(log, [_file("a", "c2")], None, NOW)
    assert again is not None and again.files[0].checksum == "c2"


def test_an_unfinished_batch_resumes_with_its_id_and_files() -> None:
    first = plan_batch([], [_file("a")], "b1", NOW)
    log = _log(first, PLANNED)
    resumed = plan_batch(log, [_file("a"), _file("new")], "other", NOW)
    assert resumed is not None
    assert (resumed.seq, resumed.batch_id, resumed.resumed) == (1, "b1", True)
    assert [f.path for f in resumed.files] == ["file:/in/a"]


def test_a_failed_batch_is_planned_again_under_a_new_number() -> None:
    first = plan_batch([], [_file("a")], "b1", NOW)
    log = _log(first, PLANNED) + _log(first, FAILED)
    retry = plan_batch(log, [_file("a")], "b1", NOW)
    assert retry is not None and (retry.seq, retry.resumed) == (2, False)


def test_an_unfinished_batch_whose_file_vanished_is_an_error() -> None:
    first = plan_batch([], [_file("a")], "b1", NOW)
    with pytest.raises(InputNotFound, match="file:/in/a is gone or changed"):
        plan_batch(_log(first, PLANNED), [_file("b")], None, NOW)


def test_a_batch_id_used_before_is_refused_and_a_default_one_never_repeats() -> None:
    """Clean selects a batch's rows by its id: a second batch under an id
    already used would be taken as cleaned and its rows stranded in bronze."""
    first = plan_batch([], [_file("a")], "b1", NOW)
    log = _log(first, PLANNED) + _log(first, DONE)
    with pytest.raises(ConfigError, match="'b1' names an earlier batch"):
        plan_batch(log, [_file("a"), _file("b")], "b1", NOW)
    # ids go into the predicates that select a batch's rows: plain characters only
    with pytest.raises(ConfigError, match="use letters, digits"):
        plan_batch(log, [_file("b")], "2024/01/01 'x'", NOW)
    same_second = plan_batch([], [_file("a")], None, NOW)
    log = _log(same_second, PLANNED) + _log(same_second, DONE)
    again = plan_batch(log, [_file("a"), _file("b")], None, NOW)
    assert again is not None
    assert (again.batch_id, same_second.batch_id) == ("20260102T030405Z-2", "20260102T030405Z")


def test_the_protection_bronze_holds_is_that_of_every_batch_but_the_failed_ones() -> None:
    from lakeforge.ingest.batches import recorded_protection

    def row(seq: int, status: str, privacy: str | None, minute: int) -> dict[str, object]:
        return {
            "batch_seq": seq,
            "status": status,
            "privacy": privacy,
            "recorded_at": datetime(2026, 1, 1, 0, minute),
        }

    rows = [
        row(2, PLANNED, "B", 3),
        row(1, DONE, "A", 2),
        row(1, PLANNED, "A", 1),
        row(2, FAILED, "B", 4),  # failed before bronze committed: B never reached it
        row(3, PLANNED, None, 5),  # a log written before fingerprints
    ]
    assert recorded_protection(rows) == ["A", "A", None]
