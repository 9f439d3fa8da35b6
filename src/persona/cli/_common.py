"""Shared CLI plumbing: settings, JSON vs human output, errors as exit codes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from persona.errors import DataValidationError, PersonaError
from persona.mlflow_env import apply_mlflow_environ
from persona.months import Window, parse_window
from persona.settings import Settings, get_settings

# Human output and logs go to stderr; stdout carries only the --json document, so a
# caller (Mage block, script) can parse stdout without filtering.
console = Console(stderr=True)

# Rich style of each monitoring verdict in human output.
VERDICT_STYLE = {
    "no_drift": "green",
    "watch": "yellow",
    "retrain": "bold red",
    "insufficient_data": "cyan",
}

JSON_OPTION = typer.Option(
    False,
    "--json",
    help="Print one JSON document on stdout (errors too). `--json`, `--json true` or "
    "`--json false`.",
)

REFERENCE_OPTION = typer.Option(
    None, "--reference", help="Reference months, e.g. 2025-01[,2025-02] (default: champion's)."
)
"""`--reference` of `monitor`, `run-month`, `cycle check` and `spark monitor` (a `str`
parameter; `reference_window` parses it inside `errors_to_exit`)."""


def reference_window(reference: str | None) -> Window | None:
    """The reference window given by `--reference` (`REFERENCE_OPTION`), parsed once here.

    Args:
        reference: The option's text, e.g. ``"2025-01,2025-02"``; None or blank: not given.

    Returns:
        The window, or None when the option was not given (the champion's months apply).

    Raises:
        MonthError: A month is not ``YYYY-MM`` (call it inside `errors_to_exit`).
    """
    return parse_window(reference)


_json_stream: list[TextIO] = []


def reserve_stdout() -> None:
    """Keep stdout for the --json document: anything else printed goes to stderr.

    Libraries print to stdout on their own (MLflow's "View run ..." lines); once a command
    starts, `sys.stdout` points at stderr and only `emit` writes to the real stdout.
    """
    if sys.stdout is not sys.stderr:
        _json_stream[:] = [sys.stdout]
    sys.stdout = sys.stderr


def _out() -> TextIO:
    return _json_stream[-1] if _json_stream else sys.stdout


def json_stdout() -> TextIO:
    """The stream reserved for JSON documents (the real stdout once a command started)."""
    return _out()


_json_mode: list[bool] = [False]


def set_json_mode(on: bool) -> None:
    """Record that the command line asked for --json (errors then print JSON everywhere)."""
    _json_mode[0] = on


def json_mode() -> bool:
    """Whether the command line asked for --json."""
    return _json_mode[0]


def emit_json(document: dict[str, Any]) -> None:
    """Write one JSON document on the real stdout."""
    _out().write(json.dumps(document, default=str) + "\n")
    _out().flush()


def settings() -> Settings:
    """Return the process settings (fails with exit code 2 on a bad setting).

    The command is a process entry point: here, and only at such edges, the MLflow
    client's environment (request bounds, identity) is applied (`persona.mlflow_env`).
    """
    with errors_to_exit():
        loaded = get_settings()
    apply_mlflow_environ(loaded)
    return loaded


def emit(result: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None]) -> None:
    """Print a command's result as JSON on stdout or through `render` for people.

    Args:
        result: JSON-ready result of the command.
        as_json: Whether --json was given.
        render: Function that prints the result for a person (to `console`).
    """
    if as_json:
        _out().write(json.dumps(result, default=str) + "\n")
        _out().flush()
    else:
        render(result)


@contextmanager
def errors_to_exit(as_json: bool = False) -> Iterator[None]:
    """Turn a `PersonaError` into a clear message and exit code 2 (no traceback).

    Args:
        as_json: Also print the error as a JSON document on stdout.
    """
    try:
        yield
    except PersonaError as exc:
        payload: dict[str, Any] = (
            exc.to_dict() if isinstance(exc, DataValidationError) else {"error": str(exc)}
        )
        payload["type"] = type(exc).__name__
        _fail(payload, str(exc), as_json)
    except Exception as exc:
        message = dependency_error(exc)
        if message is None:
            raise
        _fail({"error": message, "type": "DependencyError"}, message, as_json)


def _fail(payload: dict[str, Any], message: str, as_json: bool) -> None:
    if as_json or json_mode():
        emit_json(payload)
    console.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True
    )
    raise typer.Exit(code=2) from None


# Exceptions of a dependency (MLflow server, database, network) that reach a command
# unwrapped: one clear line instead of a traceback. Matched by class path, so checking
# does not import MLflow.
_DEPENDENCIES = {
    "mlflow.exceptions.MlflowException": "MLflow",
    "requests.exceptions.RequestException": "HTTP",
    "sqlalchemy.exc.OperationalError": "database",
    "sqlalchemy.exc.DBAPIError": "database",
    "psycopg2.OperationalError": "database",
    "builtins.TimeoutError": "timeout",
    "builtins.ConnectionError": "connection",
}


def dependency_error(exc: BaseException, limit: int = 600) -> str | None:
    """One line for an exception raised by an unreachable or stalled dependency.

    Args:
        exc: The exception that ended the command.
        limit: Most characters of the dependency's own message to keep.

    Returns:
        ``"<what> unavailable: <first line of its message>"``, or None when `exc` is not a
        dependency failure (a bug: let the traceback show).
    """
    for cls in type(exc).__mro__:
        what = _DEPENDENCIES.get(f"{cls.__module__}.{cls.__qualname__}")
        if what is not None:
            text = " ".join(str(exc).split()) or type(exc).__name__
            if len(text) > limit:
                text = text[: limit - 3] + "..."
            return f"{what} unavailable or failing ({type(exc).__name__}): {text}"
    return None


def setup_logging(verbose: bool = False) -> None:
    """Configure logging to stderr once for the command."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3 warns on each retry; a command facing a dead server prints one error instead.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    for noisy in ("alembic", "urllib3", "git", "matplotlib", "httpx", "mlflow.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
