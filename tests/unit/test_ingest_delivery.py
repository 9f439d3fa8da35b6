"""Deliveries (issue 25) on SQLite: conflicts, --replace, one transaction, rejects, id rules.

`tests/integration/test_ingest_delivery_pg.py` runs the same tests on the real PostgreSQL
(COPY streams in the delivery's one transaction).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from persona import flows
from persona.catalog import load_catalog
from persona.errors import DataValidationError, IngestError
from persona.features import FEATURE_NAMES
from persona.months import Month
from persona.store import survey_ingest, survey_queries
from persona.store.engine import open_store, utcnow
from persona.store.monitoring import MonitoringCheck, record_run, set_action
from persona.store.schema import (
    ingest_batches,
    monitoring_runs,
    persona_assignments,
    survey_rejects,
    survey_replacements,
    survey_responses,
)
from persona.store.survey_ingest import ConflictError, DeliveryError, IngestOptions
from persona.survey_input import BadRowLimit, bytes_hash, parse_bad_rows
from persona.synth import generate_month

CATALOG = load_catalog(Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml")
COLUMNS = ["respondent_id", "survey_month", *FEATURE_NAMES]
MONTH = Month("2025-02")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_store(f"sqlite:///{tmp_path}/store.db")


def count(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def month_frame(n: int = 50, seed: int = 3, month: str = MONTH) -> pd.DataFrame:
    return generate_month(CATALOG, month, n, seed=seed)[0]


def corrected(frame: pd.DataFrame, rows: list[int]) -> pd.DataFrame:
    fixed = frame.copy()
    fixed.loc[rows, "x1"] = fixed.loc[rows, "x1"] + 0.5
    return fixed


def stored_rows(engine: Engine) -> pd.DataFrame:
    return survey_queries.load_month(engine, MONTH)[COLUMNS].reset_index(drop=True)


def label_and_check(engine: Engine) -> int:
    """Labels for the stored month and a monitoring run a cycle closed (as a cycle leaves)."""
    ids = survey_queries.load_month(engine, MONTH)["response_id"].tolist()
    with engine.begin() as conn:
        conn.execute(
            persona_assignments.insert(),
            [
                {"response_id": i, "survey_month": MONTH, "model_name": "m",
                 "model_version": "1", "persona_id": "p", "persona_name": "P",
                 "nearest_persona_id": "p", "distance": 1.0, "margin": 1.0,
                 "assigned_at": utcnow()}
                for i in ids
            ],
        )  # fmt: skip
    check = MonitoringCheck(
        MONTH, survey_queries.stored_window(engine, MONTH, 1), "m", "1", "hash", len(ids),
        len(ids), None, None, 0.0, False, "ok", [], [], {}, None, None,
    )  # fmt: skip
    run_id = record_run(engine, check)
    set_action(engine, run_id, "none")
    return run_id


def test_a_correction_without_replace_fails_and_identical_rows_stay_a_no_op(
    engine: Engine,
) -> None:
    original = month_frame()
    survey_ingest.ingest_frame(engine, original, source="first")
    fixed = corrected(original, [4, 7, 9])
    with pytest.raises(ConflictError) as info:
        survey_ingest.ingest_frame(engine, fixed, source="correction")
    message = str(info.value)
    assert "3 row(s) repeat respondents stored for 2025-02 with different answers" in message
    assert "'202502-000005', '202502-000008', '202502-000010'" in message
    assert "--replace" in message
    pd.testing.assert_frame_equal(stored_rows(engine), original)  # nothing written
    assert count(engine, ingest_batches) == 1
    same = survey_ingest.ingest_frame(engine, original.iloc[10:30], source="again")
    assert (same.status, same.rows_new, same.rows_skipped) == ("added", 0, 20)
    extra = month_frame(10, 9).assign(respondent_id=[f"new-{i}" for i in range(10)])
    more = pd.concat([original.iloc[40:], extra], ignore_index=True)
    added = survey_ingest.ingest_frame(engine, more, source="more")
    assert (added.rows_new, added.rows_skipped) == (10, 10)  # new respondents still go in


def test_replace_supersedes_the_month_with_an_audit_row_and_stale_marks(engine: Engine) -> None:
    original = month_frame()
    first = survey_ingest.ingest_frame(engine, original, source="first")
    run_id = label_and_check(engine)
    assert flows._month_run(engine, MONTH) is not None
    fixed = corrected(original, [4, 7, 9]).iloc[:45]  # three answers changed, five gone
    options = IngestOptions(replace=True, actor="vendor-fix")
    result = survey_ingest.ingest_frame(engine, fixed, source="correction", options=options)
    assert (result.status, result.rows_new, result.rows_replaced) == ("replaced", 45, 50)
    pd.testing.assert_frame_equal(stored_rows(engine), fixed.reset_index(drop=True))
    with engine.connect() as conn:
        audit = conn.execute(select(survey_replacements)).mappings().one()
        action = conn.execute(
            select(monitoring_runs.c.action_taken).where(monitoring_runs.c.run_id == run_id)
        ).scalar_one()
        labels = conn.execute(select(func.count()).select_from(persona_assignments)).scalar()
    assert audit["survey_month"] == MONTH and audit["actor"] == "vendor-fix"
    assert (audit["old_content_hash"], audit["new_content_hash"]) == (
        first.content_hash,
        result.content_hash,
    )
    assert (audit["old_rows"], audit["new_rows"]) == (50, 45)
    assert (audit["labels_dropped"], audit["runs_marked_stale"], labels) == (50, 1, 0)
    assert audit["replaced_at"] is not None and audit["source"] == "correction"
    assert action == "stale:none"
    assert flows._month_run(engine, MONTH) is None  # the next cycle starts the month afresh
    # Replay-safe: the same content again, or the same rows in another form, change nothing.
    again = survey_ingest.ingest_frame(engine, fixed, source="correction", options=options)
    assert again.status == "already_ingested"
    twin = fixed.sample(frac=1.0, random_state=1)  # same rows, other order: another hash
    same = survey_ingest.ingest_frame(engine, twin, source="twin", options=options)
    assert (same.status, same.rows_new, same.rows_skipped) == ("unchanged", 0, 45)
    assert count(engine, survey_replacements) == 1
    pd.testing.assert_frame_equal(stored_rows(engine), fixed.reset_index(drop=True))


def test_replace_of_an_empty_month_just_adds(engine: Engine) -> None:
    options = IngestOptions(replace=True)
    result = survey_ingest.ingest_frame(engine, month_frame(), options=options)
    assert (result.status, result.rows_new) == ("added", 50)
    assert count(engine, survey_replacements) == 0


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_a_delivery_with_one_bad_file_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    good = write_csv(tmp_path / "survey_2025-01.csv", month_frame(30, 1, "2025-01"))
    bad_frame = month_frame(30, 2)
    bad_frame["x3"] = bad_frame["x3"].astype(object)
    bad_frame.loc[5, "x3"] = "oops"
    bad = write_csv(tmp_path / "survey_2025-02.csv", bad_frame)
    later = write_csv(tmp_path / "survey_2025-03.csv", month_frame(30, 3, "2025-03"))
    readers = [survey_ingest.file_reader(p) for p in (good, bad, later)]
    with pytest.raises(DeliveryError) as info:
        survey_ingest.ingest_delivery(engine, readers, IngestOptions())
    assert info.value.index == 1 and isinstance(info.value.cause, DataValidationError)
    assert [Path(r.source).name for r in info.value.done] == ["survey_2025-01.csv"]
    assert "row 7, column 'x3': not a number: 'oops'" in str(info.value)
    for table in (survey_responses, ingest_batches, survey_rejects):
        assert count(engine, table) == 0
    # A conflict in a later file also undoes the earlier ones.
    survey_ingest.ingest_frame(engine, month_frame(30, 2))
    conflicting = write_csv(tmp_path / "fix_2025-02.csv", corrected(month_frame(30, 2), [0]))
    readers = [survey_ingest.file_reader(p) for p in (good, conflicting, later)]
    with pytest.raises(DeliveryError) as info:
        survey_ingest.ingest_delivery(engine, readers, IngestOptions())
    assert isinstance(info.value.cause, ConflictError)
    assert survey_queries.list_months(engine) == [survey_queries.StoredMonth(MONTH, 30)]
    # Without the bad file, the delivery writes every file, each with its own result.
    readers = [survey_ingest.file_reader(p) for p in (good, later)]
    done = survey_ingest.ingest_delivery(engine, readers, IngestOptions())
    assert [(r.month, r.status, r.rows_new) for r in done] == [
        ("2025-01", "added", 30),
        ("2025-03", "added", 30),
    ]


def test_rejects_up_to_a_threshold_go_to_survey_rejects(engine: Engine, tmp_path: Path) -> None:
    frame = month_frame(100)
    frame["x3"] = frame["x3"].astype(object)
    frame.loc[5, "x3"] = "oops"  # line 7
    frame.loc[20, "x9"] = 1e6  # line 22: out of range, found once the text row is out
    frame.loc[40, "respondent_id"] = "bad id "  # line 42
    path = write_csv(tmp_path / "survey_2025-02.csv", frame)
    lines = path.read_text().splitlines()
    with pytest.raises(DataValidationError, match="line 1 is the header"):
        survey_ingest.ingest_file(engine, path)  # strict by default
    two = IngestOptions(bad_rows=BadRowLimit(2))
    with pytest.raises(DataValidationError, match="more invalid rows than the 2") as info:
        survey_ingest.ingest_file(engine, path, options=two)
    assert {i.row for i in info.value.issues} == {7, 42}  # the strict report
    assert count(engine, survey_responses) == 0
    options = IngestOptions(bad_rows=parse_bad_rows("3%"))
    result = survey_ingest.ingest_file(engine, path, options=options)
    assert (result.rows, result.rows_new, result.rows_rejected) == (100, 97, 3)
    with engine.connect() as conn:
        rejects = conn.execute(select(survey_rejects).order_by(survey_rejects.c.line)).mappings()
        found = [(r["line"], r["column_name"], r["reason"], r["raw"]) for r in rejects]
    assert found == [
        (7, "x3", "not a number: 'oops'", lines[6]),
        (22, "x9", "value 1e+06 outside [-100, 100]", lines[21]),
        (42, "respondent_id", "respondent_id has leading or trailing spaces", lines[41]),
    ]
    assert survey_queries.count_rejects(engine, MONTH) == 3
    stored = stored_rows(engine)
    assert len(stored) == 97 and "bad id " not in set(stored["respondent_id"])


def test_bad_row_limits_parse() -> None:
    assert parse_bad_rows("25") == BadRowLimit(25)
    assert parse_bad_rows("0.1%").allowed(10_000) == 10
    assert str(parse_bad_rows("0.1%")) == "0.1%"
    for text in ("-1", "x", "101%", "1.5"):
        with pytest.raises(IngestError, match="--max-bad-rows"):
            parse_bad_rows(text)


def test_respondent_ids_are_refused_with_the_row_named(engine: Engine, tmp_path: Path) -> None:
    frame = month_frame(8)
    frame["respondent_id"] = ["ok-1", "abc\ndef", " lead", "trail ", "tab\there", "x" * 65,
                              "c1\x85", "x" * 64]  # fmt: skip
    with pytest.raises(DataValidationError) as info:
        survey_ingest.ingest_frame(engine, frame)
    assert [str(i) for i in info.value.issues] == [
        "row 1, column 'respondent_id': respondent_id contains a control character",
        "row 2, column 'respondent_id': respondent_id has leading or trailing spaces",
        "row 3, column 'respondent_id': respondent_id has leading or trailing spaces",
        "row 4, column 'respondent_id': respondent_id contains a control character",
        "row 5, column 'respondent_id': respondent_id longer than 64 characters",
        "row 6, column 'respondent_id': respondent_id has leading or trailing spaces",
        "row 6, column 'respondent_id': respondent_id contains a control character",
    ]
    assert count(engine, survey_responses) == 0
    path = tmp_path / "newline.csv"
    frame.iloc[:2].to_csv(path, index=False)  # the CSV quotes the id with its newline
    with pytest.raises(DataValidationError, match="control character"):
        survey_ingest.ingest_file(engine, path)
    assert count(engine, survey_responses) == 0


def chunked(path: Path, rows: int = 40) -> survey_ingest.Reader:
    return survey_ingest.file_reader(path, chunk_rows=rows)


def deliver(engine: Engine, reader: survey_ingest.Reader, **options: object):  # type: ignore[no-untyped-def]
    return survey_ingest.ingest_delivery(engine, [reader], IngestOptions(**options))[0]  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_large_file_is_read_and_written_chunk_by_chunk(
    engine: Engine, tmp_path: Path, suffix: str
) -> None:
    frame = month_frame(100)
    path = tmp_path / f"survey_2025-02.{suffix}"
    frame.to_csv(path, index=False) if suffix == "csv" else frame.to_parquet(path)
    result = deliver(engine, chunked(path))
    assert (result.status, result.rows, result.rows_new) == ("added", 100, 100)
    assert result.content_hash == bytes_hash(path.read_bytes(), MONTH)  # as read whole
    pd.testing.assert_frame_equal(stored_rows(engine), frame)
    assert deliver(engine, chunked(path)).status == "already_ingested"
    assert survey_ingest.ingest_file(engine, path).status == "already_ingested"
    twin = tmp_path / f"twin.{suffix}"
    frame.to_csv(twin, index=False) if suffix == "csv" else frame.to_parquet(twin)
    twin.write_bytes(twin.read_bytes() + (b"\n" if suffix == "csv" else b""))
    if suffix == "csv":  # other bytes, same rows: a replacement changes nothing
        assert deliver(engine, chunked(twin), replace=True).status == "unchanged"


def test_chunks_keep_every_rule(engine: Engine, tmp_path: Path) -> None:
    frame = month_frame(100).sample(frac=1.0, random_state=2).reset_index(drop=True)  # unsorted
    path = write_csv(tmp_path / "survey_2025-02.csv", frame)
    assert deliver(engine, chunked(path)).rows_new == 100  # unsorted ids, distinct
    duplicated = frame.copy()
    duplicated.loc[90, "respondent_id"] = duplicated.loc[5, "respondent_id"]  # other chunk
    dup = write_csv(tmp_path / "dup.csv", duplicated)
    with pytest.raises(DeliveryError, match="duplicate respondent_id"):
        deliver(engine, chunked(dup), replace=True)  # staged: found in the database
    assert len(stored_rows(engine)) == 100
    # An empty month: straight in, the unique constraint stands guard (then a staged retry).
    march = write_csv(tmp_path / "march.csv", duplicated.assign(survey_month="2025-03"))
    with pytest.raises(DeliveryError, match="duplicate respondent_id"):
        deliver(engine, chunked(march))
    assert survey_queries.count_month(engine, Month("2025-03")) == 0
    bad = frame.copy()
    bad["x4"] = bad["x4"].astype(object)
    bad.loc[70, "x4"] = "oops"
    text = write_csv(tmp_path / "text.csv", bad)
    with pytest.raises(DeliveryError, match=r"after data row .*'oops'"):
        deliver(engine, chunked(text), replace=True)
    changed = corrected(frame, [3, 80])
    changed.loc[60, "x9"] = 1e6
    fix = write_csv(tmp_path / "fix.csv", changed)
    with pytest.raises(DeliveryError, match=r"2 row\(s\) repeat respondents"):
        deliver(engine, chunked(fix), bad_rows=BadRowLimit(1))
    replaced = deliver(engine, chunked(fix), bad_rows=BadRowLimit(1), replace=True)
    assert (replaced.status, replaced.rows_new, replaced.rows_rejected) == ("replaced", 99, 1)
    with engine.connect() as conn:
        reject = conn.execute(select(survey_rejects)).mappings().one()
    assert (reject["line"], reject["column_name"]) == (61, "x9")  # rows numbered from 1
    assert '"x9": "1000000.0"' in reject["raw"]
