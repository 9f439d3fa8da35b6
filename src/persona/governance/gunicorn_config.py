"""Gunicorn config of the governance receiver (`persona governance serve` passes it).

Only the API's `worker_exit` hook: a worker that has finished ends at once instead of
tearing down an interpreter that imported MLflow (seconds of `docker compose stop`). The
other options are on the command line (`persona governance serve --print`).
"""

from persona.serving.gunicorn_conf import worker_exit

__all__ = ["worker_exit"]
