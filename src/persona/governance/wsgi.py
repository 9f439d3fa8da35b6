"""The governance receiver for gunicorn: ``persona.governance.wsgi:app`` (one worker)."""

from persona.governance.receiver import create_receiver
from persona.mlflow_env import apply_mlflow_environ
from persona.settings import get_settings

_settings = get_settings()
apply_mlflow_environ(_settings)  # a process entry point: the MLflow client's environment

app = create_receiver(_settings)
