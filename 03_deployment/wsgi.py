"""WSGI entry point: `gunicorn --chdir 03_deployment wsgi:app` (`persona.serving.wsgi`)."""

from persona.serving.wsgi import app

__all__ = ["app"]
