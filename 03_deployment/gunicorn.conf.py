"""Gunicorn config of the persona API: `gunicorn -c 03_deployment/gunicorn.conf.py`.

Bind from API_HOST/API_PORT, workers from API_WORKERS; GUNICORN_WORKER_CLASS (sync |
gthread), GUNICORN_THREADS, GUNICORN_ACCESS_LOG ('-' for stdout) and GUNICORN_LOG_LEVEL
tune the rest. With API_FRONT=nginx (default) the master starts nginx on API_HOST:API_PORT
and the workers listen on a unix socket behind it. The logic is in persona.serving.gunicorn_conf.
"""

import sys
from pathlib import Path

from persona.errors import PersonaError
from persona.serving.gunicorn_conf import (
    child_exit,
    install_json_errors,
    on_exit,
    options,
    prepare_environment,
    when_ready,
)
from persona.settings import get_settings

try:
    prepare_environment()
    install_json_errors()
    globals().update(options(get_settings(), Path(__file__).resolve().parent))
except PersonaError as exc:  # a bad setting: one clear line, no traceback
    sys.exit(f"persona-api: {exc}")
__all__ = ["child_exit", "on_exit", "when_ready"]
