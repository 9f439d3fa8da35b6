"""The survey store: database code only.

SQLAlchemy Core schema (`schema`), engine and schema version (`engine`), the binary COPY
codec (`copy_codec`), and one module per table family (`survey_ingest` + `survey_write` +
`survey_queries`, `assignments`, `monitoring`, `events`). No SQL text is ever built from
user input.
"""
