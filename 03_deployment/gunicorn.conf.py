"""Gunicorn config of the persona API: `gunicorn -c 03_deployment/gunicorn.conf.py`.

Bind from API_HOST/API_PORT, workers from API_WORKERS; GUNICORN_WORKER_CLASS (sync |
gthread), GUNICORN_THREADS, GUNICORN_ACCESS_LOG ('-' for stdout) and GUNICORN_LOG_LEVEL
tune the rest. The logic is in persona.serving.gunicorn_conf.
"""

from pathlib import Path

from persona.serving.gunicorn_conf import child_exit, on_exit, options, prepare_environment
from persona.settings import get_settings

prepare_environment()
globals().update(options(get_settings(), Path(__file__).resolve().parent))
__all__ = ["child_exit", "on_exit"]
