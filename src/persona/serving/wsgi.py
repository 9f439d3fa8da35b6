"""WSGI entry point of the gunicorn config (``wsgi_app = "persona.serving.wsgi:app"``).

Importing this module builds the app from the process settings; only gunicorn workers
import it.
"""

from persona.mlflow_env import apply_mlflow_environ
from persona.serving.app import create_app
from persona.settings import get_settings

_settings = get_settings()
apply_mlflow_environ(_settings)  # a process entry point: the MLflow client's environment

app = create_app(_settings)
