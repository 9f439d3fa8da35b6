"""Batch labeling: idempotence and lineage on the real PostgreSQL (and SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from werkzeug.serving import make_server

from persona.catalog import load_catalog
from persona.errors import StoreError
from persona.features import FEATURE_NAMES
from persona.labeling import label_month
from persona.model import LoadedModel, PersonaModel, from_catalog
from persona.serving.app import create_app
from persona.serving.holder import ModelSource
from persona.settings import Settings
from persona.store import assignments, survey_ingest, survey_queries
from persona.store.engine import open_store, utcnow
from persona.synth import generate_month
from tests.store_reads import count_assignments, load_assignments

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "01_model" / "personas.yaml"
N = 3000


def _store(url: str) -> Any:
    engine = open_store(url)
    catalog = load_catalog(CATALOG)
    for month, n in (("2025-03", 400), ("2025-04", N)):
        survey, _ = generate_month(catalog, month, n, seed=5)
        survey_ingest.ingest_frame(engine, survey, month)
    return engine


def _v1() -> LoadedModel:
    model = from_catalog(load_catalog(CATALOG), np.full(3, 7.0))  # some rows unassigned
    return LoadedModel(model, "persona-classifier", "1", "champion", "test", {})


def _v2(v1: LoadedModel) -> LoadedModel:
    model = PersonaModel(("p", "q"), ("P", "Q"), v1.model.centroids[:2] + 1.0, np.full(2, np.inf))
    return LoadedModel(model, "persona-classifier", "2", "champion", "test", {})


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else (
        f"sqlite:///{tmp_path}/persona.db")  # fmt: skip
    engine = _store(url)
    yield engine
    engine.dispose()


def test_label_month_idempotent_with_lineage(
    engine: Any, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    v1 = _v1()
    frame = survey_queries.load_month(engine, "2025-04")
    expected = v1.model.predict(frame.loc[:, list(FEATURE_NAMES)].to_numpy())

    first = label_month(settings, engine, "2025-04", loaded=v1)
    assert (first.rows, first.written, first.skipped) == (N, N, 0)
    assert first.model_version == "1" and sum(first.persona_mix.values()) == N
    assert 0 < first.persona_mix["unassigned"] < N
    again = label_month(settings, engine, "2025-04", loaded=v1)
    assert (again.written, again.skipped) == (0, N)
    assert again.persona_mix == first.persona_mix

    stored = load_assignments(engine, "2025-04", "persona-classifier", "1")
    assert len(stored) == N and stored["response_id"].is_unique
    assert (stored["survey_month"] == "2025-04").all()
    stored = stored.set_index("response_id").loc[frame["response_id"]]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["persona_name"].tolist() == expected.persona_name.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_allclose(stored["distance"], expected.distance)
    np.testing.assert_allclose(stored["margin"], expected.margin)
    assert stored["assigned_at"].notna().all()

    v2 = _v2(v1)
    third = label_month(settings, engine, "2025-04", loaded=v2)
    assert third.written == N and set(third.persona_mix) <= {"p", "q"}
    assert count_assignments(engine, "2025-04", "persona-classifier", "1") == N
    mix = assignments.persona_mix(engine, "2025-04", "persona-classifier", "2")
    assert mix == third.persona_mix
    assert len(load_assignments(engine, "2025-04")) == 2 * N
    assert count_assignments(engine, "2025-03", "persona-classifier", "1") == 0


def test_partial_rerun_writes_only_missing_rows(engine: Any, make_settings: Any) -> None:
    v1 = _v1()
    frame = survey_queries.load_month(engine, "2025-04")
    head = frame.iloc[:1000]
    pred = v1.model.predict(head.loc[:, list(FEATURE_NAMES)].to_numpy())
    ids = head["response_id"].to_numpy()
    assert assignments.write_assignments(engine, ids, "2025-04", v1.name, "1", pred) == 1000
    assert assignments.write_assignments(engine, ids, "2025-04", v1.name, "1", pred) == 0
    result = label_month(make_settings(), engine, "2025-04", loaded=v1)
    assert (result.written, result.skipped) == (N - 1000, 1000)
    assert count_assignments(engine, "2025-04", v1.name, "1") == N


@pytest.mark.postgres
def test_label_via_api_matches_in_process(pg_url: str, make_settings: Any) -> None:
    engine = _store(pg_url)
    v1 = _v1()
    settings = make_settings(database_url=pg_url, api_token="t0k", api_max_records=500)
    app = create_app(settings, ModelSource(lambda: v1, lambda: None, "test"), start_reloader=False)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = label_month(settings, engine, "2025-04", via_api=url, chunk=500)
    finally:
        server.shutdown()
        thread.join(5)
    assert result.via == url and result.written == N and result.model_version == "1"
    frame = survey_queries.load_month(engine, "2025-04")
    expected = v1.model.predict(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    stored = load_assignments(engine, "2025-04", v1.name, "1")
    stored = stored.set_index("response_id").loc[frame["response_id"]]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_allclose(stored["distance"], expected.distance, rtol=1e-12)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_label_with_registered_champion(pg_url: str, make_settings: Any) -> None:
    from persona.registry import bootstrap

    engine = _store(pg_url)
    settings = make_settings(database_url=pg_url)
    version = bootstrap(settings, engine).version
    result = label_month(settings, engine, "2025-04")
    assert result.model_name == settings.model_name
    assert result.model_version == version and result.written == N
    assert count_assignments(engine, "2025-04", settings.model_name, version) == N
    engine.dispose()


# --- PostgreSQL fast paths: binary COPY month reads and label writes ---------------------


def _frames() -> dict[str, Any]:
    """Two months with respondent ids of mixed lengths and non-ASCII characters."""
    catalog = load_catalog(CATALOG)
    march, _ = generate_month(catalog, "2025-03", 60, seed=8)
    march["respondent_id"] = [f"mär-{i}" + "x" * (i % 7) for i in range(60)]
    april, _ = generate_month(catalog, "2025-04", 50, seed=9)
    april["respondent_id"] = [f"a{i}" for i in range(50)]
    late, _ = generate_month(catalog, "2025-03", 5, seed=10)
    late["respondent_id"] = [f"late-émoji-✓-{i}" for i in range(5)]
    return {"march": march, "april": april, "late": late}


@pytest.mark.postgres
def test_copy_month_read_matches_the_portable_read(pg_url: str, tmp_path: Path) -> None:
    frames = _frames()
    stores = [open_store(pg_url), open_store(f"sqlite:///{tmp_path}/lite.db")]
    for engine in stores:  # April between March's two batches: ids interleave across months
        for name in ("march", "april", "late"):
            survey_ingest.ingest_frame(engine, frames[name], frames[name]["survey_month"][0])
    pg, lite = stores
    for months in (["2025-03"], ["2025-04", "2025-03"], ["2025-04"], ["2024-01"]):
        fast, portable = (
            survey_queries.load_months(pg, months),
            survey_queries.load_months(lite, months),
        )
        pd.testing.assert_frame_equal(fast, portable)
        assert fast["respondent_id"].map(type).eq(str).all()
    window = survey_queries.load_months(pg, ["2025-03", "2025-04"])
    assert window["survey_month"].tolist() == ["2025-03"] * 65 + ["2025-04"] * 50
    assert window["respondent_id"].iloc[64] == "late-émoji-✓-4"
    empty = survey_queries.load_month(pg, "2024-01")
    assert empty.empty and list(empty.dtypes) == list(
        survey_queries.load_month(pg, "2025-04").dtypes
    )
    for engine in stores:
        engine.dispose()


def _unicode_model(v1: LoadedModel) -> LoadedModel:
    model = PersonaModel(
        ("öko", "b-very-long-persona-identifier"),
        ("Öko Olga ✓", "B"),
        v1.model.centroids[:2],
        np.array([4.0, np.inf]),
    )
    return LoadedModel(model, "persona-clässifier", "7-ünï", "champion", "test", {})


@pytest.mark.postgres
def test_copy_writes_exact_labels_on_both_paths(pg_url: str, make_settings: Any) -> None:
    engine = _store(pg_url)
    loaded = _unicode_model(_v1())
    frame = survey_queries.load_month(engine, "2025-04")
    features = np.ascontiguousarray(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    expected = loaded.model.predict(features)  # the array label_month builds: same bits
    assert len(set(zip(expected.persona_id, expected.nearest_id, strict=True))) == 3
    ids = frame["response_id"].to_numpy()
    # Partial earlier run, then the rest: the ids already there are skipped, the others COPYed.
    args = ("2025-04", loaded.name, loaded.version)
    before = utcnow()
    assert assignments.write_assignments(engine, ids[::3], *args, _take(expected, 3)) == 1000
    result = label_month(make_settings(), engine, "2025-04", loaded=loaded)
    assert (result.written, result.skipped) == (N - 1000, 1000)
    stored = load_assignments(engine, *args).set_index("response_id")
    stored = stored.loc[frame["response_id"]]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    assert stored["persona_name"].tolist() == expected.persona_name.tolist()
    assert stored["nearest_persona_id"].tolist() == expected.nearest_id.tolist()
    np.testing.assert_array_equal(stored["distance"], expected.distance)
    np.testing.assert_array_equal(stored["margin"], expected.margin)
    assert stored["assigned_at"].nunique() == 2  # one time per write, in UTC
    assert before <= stored["assigned_at"].min() <= stored["assigned_at"].max() <= utcnow()
    assert label_month(make_settings(), engine, "2025-04", loaded=loaded).written == 0
    engine.dispose()


def _take(pred: Any, step: int) -> Any:
    from dataclasses import fields, replace

    return replace(pred, **{f.name: getattr(pred, f.name)[::step] for f in fields(pred)})


@pytest.mark.postgres
def test_copy_write_guards(pg_url: str) -> None:
    engine = _store(pg_url)
    v1 = _v1()
    frame = survey_queries.load_month(engine, "2025-04").iloc[:10]
    pred = v1.model.predict(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    ids = frame["response_id"].to_numpy()
    # An unknown response id: the check in the same transaction refuses it, nothing written.
    with pytest.raises(StoreError, match="persona assignments of 2025-04"):
        assignments.write_assignments(engine, ids + 10**9, "2025-04", v1.name, "1", pred)
    assert count_assignments(engine, "2025-04", v1.name, "1") == 0
    # A repeated id: the straight COPY meets its own row, falls back to ON CONFLICT.
    twice = np.concatenate([ids, ids[:4]])
    assert assignments.write_assignments(
        engine, twice, "2025-04", v1.name, "1", _take_rows(pred, [*range(10), *range(4)])
    ) == 10  # fmt: skip
    engine.dispose()


@pytest.mark.parametrize("store", ["postgres", "sqlite"])
def test_labels_under_another_month_are_refused(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A label's month must be its response's: the key (month, model, version, response)
    is one label per response only then, and the lineage is right."""
    url = request.getfixturevalue("pg_url") if store == "postgres" else (
        f"sqlite:///{tmp_path}/persona.db")  # fmt: skip
    engine = _store(url)
    v1 = _v1()
    april = survey_queries.load_month(engine, "2025-04").iloc[:10]
    march = survey_queries.load_month(engine, "2025-03").iloc[:3]
    pred = v1.model.predict(april.loc[:, list(FEATURE_NAMES)].to_numpy())
    ids = april["response_id"].to_numpy()
    for month in ("2025-05", "2025-03"):  # no such month; another month's responses
        with pytest.raises(StoreError, match=f"not a survey response of {month}"):
            assignments.write_assignments(engine, ids, month, v1.name, "1", pred)
        assert count_assignments(engine, month, v1.name, "1") == 0
    # One id of March among April's (not a gap-free range of April): the anti-join finds it.
    mixed = np.concatenate([ids[:7], march["response_id"].to_numpy()])
    with pytest.raises(StoreError, match=f"response id {mixed[7]} is not"):
        assignments.write_assignments(engine, mixed, "2025-04", v1.name, "1", pred)
    assert count_assignments(engine, "2025-04", v1.name, "1") == 0
    assert assignments.write_assignments(engine, ids, "2025-04", v1.name, "1", pred) == 10
    engine.dispose()


def _take_rows(pred: Any, rows: list[int]) -> Any:
    from dataclasses import fields, replace

    return replace(pred, **{f.name: getattr(pred, f.name)[rows] for f in fields(pred)})


_COLUMNS = (
    " response_id bigint NOT NULL{fk}, survey_month varchar(7) NOT NULL,"
    " model_name varchar(128) NOT NULL, model_version varchar(32) NOT NULL,"
    " persona_id varchar(64) NOT NULL, persona_name varchar(128) NOT NULL,"
    " nearest_persona_id varchar(64) NOT NULL, distance float8 NOT NULL,"
    " margin float8 NOT NULL, assigned_at timestamptz NOT NULL,"
)
_MONTH_INDEX = (
    "CREATE INDEX ix_assignments_month_model"
    " ON persona_assignments (survey_month, model_name, model_version)"
)
# persona_assignments as older schema versions created it.
OLD_LAYOUTS = {
    2: "CREATE TABLE persona_assignments (assignment_id bigserial PRIMARY KEY,"
    + _COLUMNS.format(fk=" REFERENCES survey_responses (response_id)")
    + " CONSTRAINT uq_assignment_model UNIQUE (response_id, model_name, model_version));"
    + _MONTH_INDEX,
    4: "CREATE TABLE persona_assignments ("
    + _COLUMNS.format(fk="")
    + " CONSTRAINT pk_assignment_model PRIMARY KEY (response_id, model_name, model_version));"
    + _MONTH_INDEX,
}


@pytest.mark.postgres
@pytest.mark.parametrize("version", sorted(OLD_LAYOUTS))
def test_labeling_an_older_database_needs_no_migration(
    version: int, pg_url: str, make_settings: Any
) -> None:
    """A store created before schema 5 keeps its key on (response, model, version) and its
    month index (before schema 3 also assignment_id): labeling, rerun and resume still work."""
    import psycopg2

    dsn = pg_url.replace("postgresql+psycopg2://", "postgresql://")
    engine = open_store(pg_url)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE persona_assignments;" + OLD_LAYOUTS[version])
        cur.execute("UPDATE schema_info SET version = %s", (version,))
    conn.close()
    engine.dispose()
    engine = _store(pg_url)
    v1 = _v1()
    frame = survey_queries.load_month(engine, "2025-04")
    features = np.ascontiguousarray(frame.loc[:, list(FEATURE_NAMES)].to_numpy())
    expected = v1.model.predict(features)  # the array label_month labels: same bits
    ids = frame["response_id"].to_numpy()
    assert assignments.write_assignments(engine, ids[:500], "2025-04", v1.name, "1",
                                         _take_rows(expected, list(range(500)))) == 500  # fmt: skip
    resumed = label_month(make_settings(), engine, "2025-04", loaded=v1)  # staging + ON CONFLICT
    assert (resumed.written, resumed.skipped) == (N - 500, 500)
    assert label_month(make_settings(), engine, "2025-04", loaded=v1).written == 0
    assert label_month(make_settings(), engine, "2025-04", loaded=_v2(v1)).written == N
    stored = load_assignments(engine, "2025-04", v1.name, "1")
    stored = stored.set_index("response_id").loc[ids]
    assert stored["persona_id"].tolist() == expected.persona_id.tolist()
    np.testing.assert_array_equal(stored["distance"], expected.distance)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT (response_id, model_version))"
                    " FROM persona_assignments")  # fmt: skip
        assert cur.fetchone() == (2 * N, 2 * N)
        cur.execute("SELECT version FROM schema_info")
        assert cur.fetchone() == (version,)  # no migration
    conn.close()
    engine.dispose()
