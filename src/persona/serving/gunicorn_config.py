"""The gunicorn config of the persona API, as a module of the installed package.

`gunicorn -c python:persona.serving.gunicorn_config` (what `persona serve` runs) works from
a source checkout and from an installed wheel alike; `03_deployment/gunicorn.conf.py`
re-exports this module for `make serve`, the images and compose. Bind from
API_HOST/API_PORT, workers from API_WORKERS; GUNICORN_WORKER_CLASS (sync | gthread),
GUNICORN_THREADS, GUNICORN_ACCESS_LOG ('-' for stdout) and GUNICORN_LOG_LEVEL tune the
rest (all `ServingSettings`). Gunicorn alone listens on API_HOST:API_PORT (the production
stack's nginx is a service of its own). The logic is in `persona.serving.gunicorn_conf`.
"""

import sys

from persona.errors import PersonaError
from persona.serving.gunicorn_conf import (
    child_exit,
    install_json_errors,
    on_exit,
    options,
    prepare_environment,
    worker_exit,
)
from persona.settings import get_settings

try:
    prepare_environment()
    install_json_errors()
    _values = options(get_settings().serving).to_dict()
except PersonaError as exc:  # a bad setting: one clear line, no traceback
    sys.exit(f"persona-api: {exc}")
globals().update(_values)
# Every config variable and hook, so `from persona.serving.gunicorn_config import *`
# (03_deployment/gunicorn.conf.py) is the same config.
__all__ = ["child_exit", "on_exit", "worker_exit", *_values]
