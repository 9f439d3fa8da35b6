"""`persona governance ...`: the webhook receiver and MLflow's users, grants and webhook."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import typer

from persona.cli._common import JSON_OPTION, console, emit, errors_to_exit, settings

app = typer.Typer(no_args_is_help=True)
WSGI = "persona.governance.wsgi:app"


@app.command("serve")
def serve(
    print_only: bool = typer.Option(False, "--print", help="Print the command only."),
) -> None:
    """Run the governance receiver under gunicorn (one worker; replaces this process)."""
    cfg = settings()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    # One worker: the scheduled reconcile runs once per receiver, not once per worker. No
    # control socket (gunicorn >= 25.1 puts it in $HOME/.gunicorn: not writable in the image).
    # The config is the API's hooks (`persona.serving.gunicorn_conf`): a finished worker
    # ends at once (`worker_exit`); the metrics hooks do nothing without a metrics folder.
    command = [
        gunicorn, WSGI, "--config=python:persona.serving.gunicorn_conf",
        "--workers=1", "--worker-class=gthread", "--threads=4",
        f"--bind={cfg.governance_host}:{cfg.governance_port}", "--timeout=120",
        "--graceful-timeout=5", "--error-logfile=-", "--name=persona-governance",
        "--no-control-socket",
    ]  # fmt: skip
    if print_only:
        console.print(" ".join(command))
        raise typer.Exit(0)
    console.print(f"governance receiver on http://{cfg.governance_host}:{cfg.governance_port}")
    os.execv(gunicorn, command)


@app.command("setup-mlflow")
def setup_mlflow(as_json: bool = JSON_OPTION) -> None:
    """As MLflow's admin: the platform's identities, their grants and the webhook (idempotent)."""
    from persona.governance.access import setup_mlflow as run

    cfg = settings()
    with errors_to_exit(as_json):
        result = run(cfg).to_dict()
    emit(result, as_json, _render_setup)


@app.command("add-person")
def add_person(
    username: str = typer.Argument(..., help="The person's MLflow user name."),
    role: str = typer.Option("promoter", "--role", help="promoter (MANAGE) or reader (READ)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """As MLflow's admin: give a person an identity; the password is read from stdin."""
    from persona.errors import SettingsError
    from persona.governance.access import add_person as run

    cfg = settings()
    with errors_to_exit(as_json):
        if role not in ("promoter", "reader"):
            raise SettingsError(f"--role must be promoter or reader, got {role!r}")
        prompt = sys.stdin.isatty()
        password = typer.prompt("password", hide_input=True) if prompt else sys.stdin.readline()
        result = run(cfg, username, password.rstrip("\n"), role)  # type: ignore[arg-type]
    emit(result, as_json, lambda r: console.print(f"{r['user']} {r['state']}: {r['permission']}"))


def _render_setup(result: dict[str, Any]) -> None:
    for user, state in result["users"].items():
        console.print(f"{user}: {state}, {result['grants'][user]} on the model")
    console.print(f"webhook {result['webhook_id']}: {result['webhook']}")
