"""The MLflow client's process environment, applied by process entry points only.

MLflow's REST client reads its request bounds and its basic-auth identity from environment
variables, at each request, and from nowhere else. The `persona` command and the gunicorn
apps (API, governance receiver) put them there once at start-up; library code never writes
``os.environ``, so calling the package in-process leaves the caller's environment alone.
No MLflow import here: the CLI applies this before knowing whether MLflow is needed.
"""

from __future__ import annotations

import os

from persona.settings import Settings


def mlflow_environ(settings: Settings) -> dict[str, str]:
    """The MLflow client's environment for these settings: request bounds and identity.

    MLflow's REST client reads its timeout, retries, backoff and basic-auth identity from
    environment variables only, at each request. Its defaults (120 s, 7 retries, backoff 2)
    make a call to a server that does not answer take minutes; ours give up within about
    ``(MLFLOW_REQUEST_MAX_RETRIES + 1) x MLFLOW_REQUEST_TIMEOUT_S`` plus a second.

    Args:
        settings: `mlflow_request_timeout_s`, `mlflow_request_max_retries`, the identity.

    Returns:
        Variable name -> value.
    """
    env = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow_request_timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.mlflow_request_max_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
        # Artifact transfers are tiny; tqdm bars would only clutter stderr of the CLI.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    if settings.mlflow_tracking_username:  # a value from `.env` reaches MLflow this way
        env["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_tracking_username
        env["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_tracking_password
    return env


def apply_mlflow_environ(settings: Settings) -> None:
    """Process entry points only: put `mlflow_environ` into ``os.environ``.

    Called once by the `persona` command and by the gunicorn apps (API, governance
    receiver) before any MLflow call; never by library code, so a function of the package
    called in-process leaves the caller's environment as it was.
    """
    os.environ.update(mlflow_environ(settings))
