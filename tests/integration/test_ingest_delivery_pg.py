"""The delivery tests of `tests/unit/test_ingest_delivery.py` on the real PostgreSQL.

Same test bodies, PostgreSQL engine: the files' COPY streams, the staging table, the
conflict and equality checks, the replacement and the rejects all run in the delivery's
one transaction.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from persona.store.engine import open_store

pytestmark = pytest.mark.postgres

_spec = importlib.util.spec_from_file_location(
    "_delivery_cases", Path(__file__).resolve().parents[1] / "unit" / "test_ingest_delivery.py"
)
assert _spec and _spec.loader
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

test_a_correction_without_replace_fails_and_identical_rows_stay_a_no_op = (
    cases.test_a_correction_without_replace_fails_and_identical_rows_stay_a_no_op
)
test_replace_supersedes_the_month_with_an_audit_row_and_stale_marks = (
    cases.test_replace_supersedes_the_month_with_an_audit_row_and_stale_marks
)
test_replace_of_an_empty_month_just_adds = cases.test_replace_of_an_empty_month_just_adds
test_a_delivery_with_one_bad_file_writes_nothing = (
    cases.test_a_delivery_with_one_bad_file_writes_nothing
)
test_rejects_up_to_a_threshold_go_to_survey_rejects = (
    cases.test_rejects_up_to_a_threshold_go_to_survey_rejects
)
test_respondent_ids_are_refused_with_the_row_named = (
    cases.test_respondent_ids_are_refused_with_the_row_named
)

test_a_large_file_is_read_and_written_chunk_by_chunk = (
    cases.test_a_large_file_is_read_and_written_chunk_by_chunk
)
test_chunks_keep_every_rule = cases.test_chunks_keep_every_rule


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = open_store(pg_url)
    assert engine.dialect.name == "postgresql"
    yield engine
    engine.dispose()
