"""`persona serve`: run the API under gunicorn with the package's gunicorn config."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer

from persona.cli._common import console, settings

# A module of the package, so an installed `persona serve` finds it as a checkout does
# (`03_deployment/gunicorn.conf.py` re-exports the same module).
CONFIG = "python:persona.serving.gunicorn_config"


def serve(
    host: str = typer.Option(None, "--host", help="Bind address (default API_HOST)."),
    port: int = typer.Option(None, "--port", help="Port (default API_PORT)."),
    workers: int = typer.Option(None, "--workers", help="Worker processes (default API_WORKERS)."),
    worker_class: str = typer.Option(
        None, "--worker-class", help="sync (default) or gthread (GUNICORN_WORKER_CLASS)."
    ),
    print_only: bool = typer.Option(False, "--print", help="Print the command, do not run it."),
) -> None:
    """Serve the champion model over REST under gunicorn (replaces this process)."""
    cfg = settings().serving
    overrides = {"API_HOST": host, "API_PORT": port, "API_WORKERS": workers,
                 "GUNICORN_WORKER_CLASS": worker_class}  # fmt: skip
    for name, value in overrides.items():
        if value is not None:
            os.environ[name] = str(value)
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    command = [gunicorn, "-c", CONFIG]
    if print_only:
        console.print(" ".join(command))
        raise typer.Exit(0)
    console.print(
        f"serving on http://{host or cfg.api_host}:{port or cfg.api_port} "
        f"({workers or cfg.api_workers} workers)"
    )
    os.execv(gunicorn, command)
