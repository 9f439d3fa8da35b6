"""The survey store.

SQLAlchemy Core schema (`schema`), engine and schema version (`engine`), and one query
module per table family (`surveys`, `assignments`, `monitoring`, `events`). No SQL text
is ever built from user input.
"""
