-- Generated from persona.store.schema (SCHEMA_VERSION 6); do not edit by hand:
--   python -m tests.db_schema_sql > docker/postgres/schema.sql
-- Included by init.sql as the tables' owner role.

CREATE TABLE IF NOT EXISTS ingest_batches (
	batch_id VARCHAR(36) NOT NULL,
	source TEXT NOT NULL,
	content_hash VARCHAR(64) NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	rows INTEGER NOT NULL,
	rows_new INTEGER NOT NULL,
	ingested_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (batch_id),
	UNIQUE (content_hash)
);
CREATE TABLE IF NOT EXISTS model_events (
	event_id BIGSERIAL NOT NULL,
	model_name VARCHAR(128) NOT NULL,
	event VARCHAR(32) NOT NULL,
	from_version VARCHAR(32),
	to_version VARCHAR(32) NOT NULL,
	reason TEXT NOT NULL,
	actor VARCHAR(128) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (event_id)
);
CREATE TABLE IF NOT EXISTS monitoring_runs (
	run_id BIGSERIAL NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	reference_months VARCHAR(255) NOT NULL,
	model_name VARCHAR(128) NOT NULL,
	model_version VARCHAR(32) NOT NULL,
	data_hash VARCHAR(64) NOT NULL,
	n_current INTEGER NOT NULL,
	n_reference INTEGER NOT NULL,
	n_current_sampled INTEGER,
	n_reference_sampled INTEGER,
	drift_share FLOAT,
	dataset_drift BOOLEAN,
	decision VARCHAR(32) NOT NULL,
	reasons JSON NOT NULL,
	feature_results JSON NOT NULL,
	persona_fit JSON NOT NULL,
	action_taken VARCHAR(64),
	report_path TEXT,
	mlflow_run_id VARCHAR(64),
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (run_id),
	CONSTRAINT uq_monitoring_check UNIQUE (survey_month, reference_months, model_name, model_version, data_hash)
);
CREATE TABLE IF NOT EXISTS persona_assignments (
	response_id BIGINT NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	model_name VARCHAR(128) NOT NULL,
	model_version VARCHAR(32) NOT NULL,
	persona_id VARCHAR(64) NOT NULL,
	persona_name VARCHAR(128) NOT NULL,
	nearest_persona_id VARCHAR(64) NOT NULL,
	distance FLOAT NOT NULL,
	margin FLOAT NOT NULL,
	assigned_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_assignment_month PRIMARY KEY (survey_month, model_name, model_version, response_id)
);
CREATE TABLE IF NOT EXISTS schema_info (
	id SERIAL NOT NULL,
	version INTEGER NOT NULL,
	applied_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id)
);
CREATE TABLE IF NOT EXISTS survey_rejects (
	reject_id BIGSERIAL NOT NULL,
	batch_id VARCHAR(36) NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	source TEXT NOT NULL,
	line BIGINT NOT NULL,
	column_name VARCHAR(128),
	reason TEXT NOT NULL,
	raw TEXT NOT NULL,
	rejected_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (reject_id)
);
CREATE INDEX IF NOT EXISTS ix_survey_rejects_month ON survey_rejects (survey_month);
CREATE TABLE IF NOT EXISTS survey_replacements (
	replacement_id BIGSERIAL NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	old_content_hash TEXT NOT NULL,
	new_content_hash VARCHAR(64) NOT NULL,
	old_rows INTEGER NOT NULL,
	new_rows INTEGER NOT NULL,
	labels_dropped INTEGER NOT NULL,
	runs_marked_stale INTEGER NOT NULL,
	source TEXT NOT NULL,
	actor VARCHAR(128) NOT NULL,
	replaced_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (replacement_id)
);
CREATE TABLE IF NOT EXISTS survey_responses (
	response_id BIGSERIAL NOT NULL,
	respondent_id VARCHAR(64) NOT NULL,
	survey_month VARCHAR(7) NOT NULL,
	x1 FLOAT NOT NULL,
	x2 FLOAT NOT NULL,
	x3 FLOAT NOT NULL,
	x4 FLOAT NOT NULL,
	x5 FLOAT NOT NULL,
	x6 FLOAT NOT NULL,
	x7 FLOAT NOT NULL,
	x8 FLOAT NOT NULL,
	x9 FLOAT NOT NULL,
	x10 FLOAT NOT NULL,
	batch_id VARCHAR(36) NOT NULL,
	ingested_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (response_id),
	CONSTRAINT uq_respondent_month UNIQUE (respondent_id, survey_month)
);
CREATE INDEX IF NOT EXISTS ix_survey_responses_month ON survey_responses (survey_month);
INSERT INTO schema_info (id, version, applied_at) VALUES (1, 6, now()) ON CONFLICT (id) DO NOTHING;
