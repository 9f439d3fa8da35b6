"""SQLAlchemy Core tables of the survey store (PostgreSQL or SQLite, same schema).

Bump `SCHEMA_VERSION` whenever a table changes; `engine.init_db` records it in
`schema_info` and refuses a database written by a newer version.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from persona.features import FEATURE_NAMES

# 2: survey_responses.batch_id has no FOREIGN KEY (see below). A version-1 database keeps
# its foreign key: still correct, only slower to ingest into; no migration is needed.
# 3: persona_assignments has no surrogate assignment_id; (response, model, version) is the
# primary key. An older database keeps its assignment_id (filled by its default) and its
# unique constraint: still correct, only slower to label into; no migration is needed.
# 4: persona_assignments.response_id has no FOREIGN KEY (see below). An older database keeps
# it: still correct, only slower to label into; no migration is needed.
# 5: persona_assignments' primary key is (survey_month, model_name, model_version,
# response_id) and ix_assignments_month_model is gone (see below). An older database keeps
# its key on (response_id, model_name, model_version) and its month index: still correct
# (every insert uses ON CONFLICT DO NOTHING without a conflict target, which holds with
# either key), only slower to label into; no migration is needed.
# 6: new tables survey_rejects and survey_replacements (issue 25). `init_db` runs
# `metadata.create_all`, which creates missing tables in an older database and leaves
# the existing ones as they are; no existing table changed, so no migration is needed.
SCHEMA_VERSION = 6

metadata = MetaData()

# An auto-incrementing 64-bit key on PostgreSQL that stays SQLite's INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")


def _month() -> Column[str]:
    """The survey month column (``YYYY-MM``) every table about a month has."""
    return Column("survey_month", String(7), nullable=False)


def _model() -> list[Column[str]]:
    """The lineage columns of a row made with a registered model version."""
    return [
        Column("model_name", String(128), nullable=False),
        Column("model_version", String(32), nullable=False),
    ]


schema_info = Table(
    "schema_info",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

ingest_batches = Table(
    "ingest_batches",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("source", Text, nullable=False),
    Column("content_hash", String(64), nullable=False, unique=True),
    _month(),
    Column("rows", Integer, nullable=False),
    Column("rows_new", Integer, nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

survey_responses = Table(
    "survey_responses",
    metadata,
    Column("response_id", _BigId, primary_key=True, autoincrement=True),
    Column("respondent_id", String(64), nullable=False),
    _month(),
    *[Column(name, Float, nullable=False) for name in FEATURE_NAMES],
    # No FOREIGN KEY to ingest_batches on purpose: the store writes the batch row and its
    # responses in the same transaction (persona.store.survey_ingest), so the constraint guarded
    # nothing the code does not, and its per-row check was ~40 % of the COPY time.
    Column("batch_id", String(36), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("respondent_id", "survey_month", name="uq_respondent_month"),
    Index("ix_survey_responses_month", "survey_month"),
)

# One label per response and model version (labeling idempotence). A response has one month,
# so the primary key (month, model name, version, response) says the same, and the one
# B-tree also serves every query, which asks for a month's labels of a model (version):
# the separate (month, model, version) index it replaces was ~30 % of the write's server
# time, and a new version's labels now append at the right edge of their key range instead
# of going between the rows of earlier versions. Every writer checks that a label's month is
# its response's (`store.assignments`). A surrogate id cost a second unique index and a
# sequence call per row, ~10 % of labeling a month, and nothing referred to it.
# No FOREIGN KEY to survey_responses: its per-row check (and the row lock it takes on every
# referenced response, which rewrites the survey pages) was ~45 % of writing a month's
# labels. `store.assignments.write_assignments` checks the ids with one anti-join in the
# same transaction instead (responses are never deleted), so an unknown id still writes nothing.
persona_assignments = Table(
    "persona_assignments",
    metadata,
    Column("response_id", _BigId, nullable=False, autoincrement=False),
    _month(),
    *_model(),
    Column("persona_id", String(64), nullable=False),
    Column("persona_name", String(128), nullable=False),
    Column("nearest_persona_id", String(64), nullable=False),
    Column("distance", Float, nullable=False),
    Column("margin", Float, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint(
        "survey_month", "model_name", "model_version", "response_id", name="pk_assignment_month"
    ),
)

monitoring_runs = Table(
    "monitoring_runs",
    metadata,
    Column("run_id", _BigId, primary_key=True, autoincrement=True),
    _month(),
    Column("reference_months", String(255), nullable=False),
    *_model(),
    Column("data_hash", String(64), nullable=False),
    Column("n_current", Integer, nullable=False),
    Column("n_reference", Integer, nullable=False),
    Column("n_current_sampled", Integer, nullable=True),
    Column("n_reference_sampled", Integer, nullable=True),
    Column("drift_share", Float, nullable=True),
    Column("dataset_drift", Boolean, nullable=True),
    Column("decision", String(32), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("feature_results", JSON, nullable=False),
    Column("persona_fit", JSON, nullable=False),
    Column("action_taken", String(64), nullable=True),
    Column("report_path", Text, nullable=True),
    Column("mlflow_run_id", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint(
        "survey_month",
        "reference_months",
        "model_name",
        "model_version",
        "data_hash",
        name="uq_monitoring_check",
    ),
)

model_events = Table(
    "model_events",
    metadata,
    Column("event_id", _BigId, primary_key=True, autoincrement=True),
    Column("model_name", String(128), nullable=False),
    Column("event", String(32), nullable=False),
    Column("from_version", String(32), nullable=True),
    Column("to_version", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Rows an ingest let through `--max-bad-rows` without storing them: one row per rejected
# input row, written in the ingest's transaction (a failed ingest leaves none behind).
survey_rejects = Table(
    "survey_rejects",
    metadata,
    Column("reject_id", _BigId, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), nullable=False),
    _month(),
    Column("source", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("column_name", String(128), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("rejected_at", DateTime(timezone=True), nullable=False),
    Index("ix_survey_rejects_month", "survey_month"),
)

# The audit of `persona data ingest --replace`: one row per month whose stored rows a
# delivery superseded (content hashes before and after, row counts, what went stale).
survey_replacements = Table(
    "survey_replacements",
    metadata,
    Column("replacement_id", _BigId, primary_key=True, autoincrement=True),
    _month(),
    Column("old_content_hash", Text, nullable=False),
    Column("new_content_hash", String(64), nullable=False),
    Column("old_rows", Integer, nullable=False),
    Column("new_rows", Integer, nullable=False),
    Column("labels_dropped", Integer, nullable=False),
    Column("runs_marked_stale", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("replaced_at", DateTime(timezone=True), nullable=False),
)
