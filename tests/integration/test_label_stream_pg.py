"""Labeling a month as it is read (PostgreSQL): streamed COPY both ways, one transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import pytest
from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from persona.catalog import load_catalog
from persona.errors import ModelError, StoreError
from persona.features import FEATURE_NAMES
from persona.model import from_catalog
from persona.store import assignments, survey_ingest, survey_queries
from persona.store.assignment_copy import COPY_COLUMNS, LabelEncoder, rows_of
from persona.store.copy_stream import CopySender
from persona.store.engine import open_store, utcnow
from persona.store.schema import persona_assignments
from persona.synth import generate_month
from tests.store_reads import count_assignments, load_assignments

CATALOG = Path(__file__).resolve().parents[2] / "01_model" / "personas.yaml"
N = 3000
MONTH = "2025-04"
MODEL = from_catalog(load_catalog(CATALOG), np.full(3, 7.0))  # some rows unassigned

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = open_store(pg_url)
    catalog = load_catalog(CATALOG)
    for month, n in (("2025-03", 400), (MONTH, N), ("2025-05", 300)):
        survey, _ = generate_month(catalog, month, n, seed=5)
        survey_ingest.ingest_frame(engine, survey, month)
    yield engine
    engine.dispose()


def _month(engine: Engine) -> tuple[np.ndarray, np.ndarray]:
    frame = survey_queries.load_month(engine, MONTH)
    return frame["response_id"].to_numpy(), np.ascontiguousarray(frame[list(FEATURE_NAMES)])


def _labels(engine: Engine, version: str) -> Any:
    stored = load_assignments(engine, MONTH, "m", version)
    return stored.set_index("response_id")


def test_the_schema_has_one_key_for_uniqueness_and_month_queries(engine: Engine) -> None:
    found = inspect(engine)
    key = found.get_pk_constraint("persona_assignments")["constrained_columns"]
    assert key == ["survey_month", "model_name", "model_version", "response_id"]
    assert found.get_indexes("persona_assignments") == []
    assert found.get_foreign_keys("persona_assignments") == []


def test_month_features_arrive_in_chunks_of_the_asked_size(engine: Engine) -> None:
    ids, features = _month(engine)
    chunks: list[tuple[np.ndarray, np.ndarray]] = []
    rows = survey_queries.stream_month_features(
        engine, MONTH, 700, lambda i, x: chunks.append((i, x))
    )
    assert rows == N and [len(i) for i, _ in chunks] == [700, 700, 700, 700, 200]
    got_ids = np.concatenate([i for i, _ in chunks])
    got = np.concatenate([x for _, x in chunks])
    assert all(x.flags.c_contiguous and x.dtype == np.float64 for _, x in chunks)
    order = np.argsort(got_ids)
    np.testing.assert_array_equal(got_ids[order], ids)
    np.testing.assert_array_equal(got[order], features)
    assert survey_queries.stream_month_features(engine, "2024-01", 700, chunks.append) == 0


def test_a_failing_handler_stops_the_read_and_its_error_comes_through(engine: Engine) -> None:
    class BoomError(Exception):
        pass

    seen: list[int] = []

    def handle(ids: np.ndarray, _x: np.ndarray) -> None:
        seen.append(len(ids))
        if len(seen) == 2:
            raise BoomError()

    with pytest.raises(BoomError):
        survey_queries.stream_month_features(engine, MONTH, 500, handle)
    assert seen == [500, 500]
    # The connection left in the middle of the COPY was discarded: the pool still works.
    assert survey_queries.stream_month_features(engine, MONTH, 5000, lambda i, x: None) == N
    assert survey_queries.count_month(engine, MONTH) == N


def _tuples(engine: Engine, ids: np.ndarray, features: np.ndarray, version: str) -> bytes:
    encoder = LabelEncoder((MONTH, "m", version, utcnow()), "utf-8")
    return encoder.tuples(ids, MODEL.predict(features))


def test_copy_sender_writes_in_the_callers_transaction(engine: Engine) -> None:
    ids, features = _month(engine)
    with engine.begin() as conn:
        with CopySender(conn, persona_assignments, COPY_COLUMNS, 1 << 12, depth=1) as sender:
            for start in range(0, N, 1000):
                part = slice(start, start + 1000)
                sender.send(_tuples(engine, ids[part], features[part], "1"))
        assert conn.execute(select(func.count()).select_from(persona_assignments)).scalar() == N
    stored = _labels(engine, "1").loc[ids]
    expected = MODEL.predict(features)
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    np.testing.assert_array_equal(stored["distance"], expected.distance)


def test_copy_sender_left_with_an_error_writes_nothing(engine: Engine) -> None:
    ids, features = _month(engine)
    with (
        pytest.raises(RuntimeError, match="caller failed"),
        engine.begin() as conn,
        CopySender(conn, persona_assignments, COPY_COLUMNS, 1 << 12, depth=1) as sender,
    ):
        sender.send(_tuples(engine, ids[:1000], features[:1000], "1"))
        raise RuntimeError("caller failed")
    assert count_assignments(engine, MONTH, "m", "1") == 0
    assert [t.name for t in threading.enumerate() if t.name == "copy-sender"] == []


def test_copy_sender_reports_the_servers_error(engine: Engine) -> None:
    ids, features = _month(engine)
    assert assignments.write_assignments(
        engine, ids[:10], MONTH, "m", "1", MODEL.predict(features[:10])
    ) == 10  # fmt: skip
    with (
        pytest.raises(IntegrityError) as info,
        engine.begin() as conn,
        CopySender(conn, persona_assignments, COPY_COLUMNS, 1 << 12, depth=1) as sender,
    ):
        for start in range(0, N, 500):
            part = slice(start, start + 500)
            sender.send(_tuples(engine, ids[part], features[part], "1"))
    assert getattr(info.value.orig, "pgcode", None) == "23505"  # unique violation
    assert count_assignments(engine, MONTH, "m", "1") == 10


def test_label_month_copy_matches_one_predict_on_the_whole_month(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, features = _month(engine)
    expected = MODEL.predict(features)
    monkeypatch.setattr(assignments, "_STREAM_ROWS", 1024)  # three chunks
    marks: list[str] = []
    done = assignments.label_month_copy(engine, MONTH, "m", "1", MODEL.predict, marks.append)
    assert (done.rows, done.written) == (N, N)
    ids_, counts = np.unique(expected.persona_id, return_counts=True)
    assert done.persona_counts == dict(zip(ids_.tolist(), counts.tolist(), strict=True))
    chunks = -(-N // 1024)
    assert marks == ["start", *["read", "predict", "encode", "send"] * chunks, "read", "finish"]
    stored = _labels(engine, "1").loc[ids]
    assert (stored["survey_month"] == MONTH).all() and (stored["model_name"] == "m").all()
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["persona_name"].tolist() == expected.persona_name.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_allclose(stored["distance"], expected.distance, rtol=1e-13)
    np.testing.assert_allclose(stored["margin"], expected.margin, rtol=1e-13)
    assert stored["assigned_at"].nunique() == 1
    again = assignments.label_month_copy(engine, MONTH, "m", "1", MODEL.predict)
    assert (again.rows, again.written) == (N, 0)


def test_a_failure_mid_stream_writes_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assignments, "_STREAM_ROWS", 500)
    calls: list[int] = []

    def predict(x: np.ndarray) -> Any:
        calls.append(len(x))
        if len(calls) == 4:
            raise ModelError("model failed on chunk 4")
        return MODEL.predict(x)

    with pytest.raises(ModelError, match="chunk 4"):
        assignments.label_month_copy(engine, MONTH, "m", "1", predict)
    assert calls == [500] * 4
    assert count_assignments(engine, MONTH, "m", "1") == 0
    assert [t.name for t in threading.enumerate() if t.name == "copy-sender"] == []


def _waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                     " AND datname = current_database()")  # fmt: skip
        return bool(conn.execute(query).scalar())


def test_a_concurrent_writer_sends_the_straight_copy_to_the_on_conflict_path(
    engine: Engine, pg_url: str
) -> None:
    """Another transaction holds an uncommitted label of the month: the straight COPY waits
    for it, meets it as a unique violation, and is redone through staging + ON CONFLICT."""
    ids = _month(engine)[0]
    other = psycopg2.connect(pg_url.replace("postgresql+psycopg2://", "postgresql://"))
    with other.cursor() as cur:  # uncommitted: label_month_copy sees no rows of its version
        cur.execute(
            "INSERT INTO persona_assignments VALUES (%s, %s, 'm', '1', 'x', 'X', 'x', 0, 0, now())",
            (int(ids[5]), MONTH),
        )
    result: dict[str, Any] = {}

    def run() -> None:
        result["done"] = assignments.label_month_copy(engine, MONTH, "m", "1", MODEL.predict)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 60
    while not _waiting_for_a_lock(engine) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _waiting_for_a_lock(engine)
    other.commit()
    other.close()
    worker.join(60)
    assert (result["done"].rows, result["done"].written) == (N, N - 1)
    stored = _labels(engine, "1")
    assert len(stored) == N and stored.loc[int(ids[5]), "persona_id"] == "x"  # theirs stays


def test_two_runs_at_once_write_each_label_once(pg_url: str, engine: Engine) -> None:
    engines = [open_store(pg_url), open_store(pg_url)]
    done: list[Any] = []

    def run(e: Engine) -> None:
        done.append(assignments.label_month_copy(e, MONTH, "m", "1", MODEL.predict))

    runs = [threading.Thread(target=run, args=(e,)) for e in engines]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    assert sorted(d.rows for d in done) == [N, N]
    assert sum(d.written for d in done) == N
    assert count_assignments(engine, MONTH, "m", "1") == N
    for e in engines:
        e.dispose()


def test_a_resume_copies_only_the_missing_rows_straight_in(engine: Engine) -> None:
    ids, features = _month(engine)
    every = MODEL.predict(features)
    head = np.arange(0, N, 7)  # a partial earlier run, not a prefix
    pre = assignments.write_assignments(engine, ids[head], MONTH, "m", "1", rows_of(every, head))
    assert pre == len(head)
    with engine.connect() as conn:
        labelled = assignments.labelled_ids(conn, MONTH, "m", "1")
    np.testing.assert_array_equal(np.sort(labelled), ids[head])
    done = assignments.label_month_copy(engine, MONTH, "m", "1", MODEL.predict)
    assert (done.rows, done.written) == (N, N - len(head))
    assert sum(done.persona_counts.values()) == N  # the mix of every row, as on a first run
    stored = _labels(engine, "1").loc[ids]
    assert stored["persona_id"].tolist() == every.persona_id.tolist()
    assert stored["assigned_at"].nunique() == 2  # the earlier run's rows stay as they were
    with engine.connect() as conn:
        names = MetaData()
        names.reflect(conn)
        assert "persona_assign_staging" not in names.tables
    with pytest.raises(StoreError, match="not a survey response of 2025-05"):
        assignments.write_assignments(
            engine, ids[:7], "2025-05", "m", "1", rows_of(every, head[:7])
        )


def test_labeling_as_read_needs_postgresql(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/persona.db")
    with pytest.raises(StoreError, match="needs PostgreSQL"):
        assignments.label_month_copy(engine, MONTH, "m", "1", MODEL.predict)
    engine.dispose()
