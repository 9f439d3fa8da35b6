"""Load the month's survey rows from PostgreSQL (the UI preview of what the cycle sees)."""

import sqlite3
from os import environ, path

import pandas as pd
from mage_ai.io.config import ConfigFileLoader
from mage_ai.io.postgres import Postgres
from mage_ai.settings.repo import get_repo_path

from persona_pipeline.utils.persona_cli import month_vars, postgres_env_from_database_url

if "data_loader" not in globals():
    from mage_ai.data_preparation.decorators import data_loader

QUERY = "SELECT * FROM survey_responses WHERE survey_month = %s ORDER BY response_id"


@data_loader
def load_survey_month(*args, **kwargs):
    month, _ = month_vars(kwargs)
    if not postgres_env_from_database_url():  # embedded default: the SQLite file
        url = environ.get("DATABASE_URL", "sqlite:///var/persona.db")
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return pd.read_sql(QUERY.replace("%s", "?"), conn, params=(month,))
    config = ConfigFileLoader(path.join(get_repo_path(), "io_config.yaml"), "persona")
    with Postgres.with_config(config) as loader:
        return loader.load(QUERY, params=(month,))
