"""How the `persona` command is entered: `--json [true|false]`, and JSON for every error.

`PersonaTyper` is the command's Typer app. Called (by the console script or by the entry
scripts in the numbered folders) it

- accepts ``--json``, ``--json true|false`` (also ``1/0``, ``yes/no``, ``on/off``) and
  ``--json=VALUE``, as the help says;
- in ``--json`` mode prints every error as one JSON document on stdout: a bad setting, a
  usage error (unknown option, bad value) and an unexpected exception (its traceback goes to
  stderr), with exit code 2 for usage errors and bad input, 1 for an unexpected exception.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import typer

from persona.cli import _common

log = logging.getLogger(__name__)

_TRUE = frozenset(("true", "1", "yes", "on"))
_FALSE = frozenset(("false", "0", "no", "off"))


def normalize_json_flag(args: Sequence[str]) -> list[str]:
    """Rewrite ``--json VALUE`` / ``--json=VALUE`` into the plain flag (or drop it when false).

    Args:
        args: Command-line arguments (without the program name).

    Returns:
        The arguments with every ``--json`` as a bare flag, at most once.

    Raises:
        typer.BadParameter: ``--json=VALUE`` with a VALUE that is not a boolean.
    """
    out: list[str] = []
    on: bool | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out += args[i:]
            break
        if arg == "--json":
            following = args[i + 1].lower() if i + 1 < len(args) else ""
            on = following not in _FALSE
            i += 2 if following in _TRUE | _FALSE else 1
            continue
        if arg.startswith("--json="):
            value = arg.split("=", 1)[1].lower()
            if value not in _TRUE | _FALSE:
                raise typer.BadParameter(
                    f"{value!r}: expected true or false", param_hint="'--json'"
                )
            on = value in _TRUE
            i += 1
            continue
        out.append(arg)
        i += 1
    if on:
        cut = out.index("--") if "--" in out else len(out)
        out.insert(cut, "--json")
    return out


def _first_word(argv: list[str]) -> int:
    """Index of the first sub-command word (options before it belong to the root)."""
    return next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))


def _usage(exc: Exception) -> tuple[str, int]:
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    code = getattr(exc, "exit_code", 2)
    return str(message), code if isinstance(code, int) and code else 2


def _json_error(error: str, kind: str, code: int) -> None:
    _common.emit_json({"error": error, "type": kind, "exit_code": code})


def _flag_type(option: Any, ctx: Any) -> str | None:
    """No type column for an on/off option: Typer 0.29 prints ``<bool>`` beside ``--help``."""
    return None if option.is_flag else _option_type(option, ctx)


_option_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign,assignment]


class PersonaTyper(typer.Typer):
    """The `persona` Typer app with `--json VALUE` and JSON errors (module docstring)."""

    def __call__(self, args: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Run the command line `args` (default ``sys.argv[1:]``); exits like a console script."""
        raw = list(sys.argv[1:] if args is None else args)
        as_json = any(a == "--json" or a.startswith("--json=") for a in raw)
        try:
            argv = normalize_json_flag(raw)
        except typer.BadParameter as exc:
            if as_json:
                _json_error(exc.format_message(), "UsageError", 2)
            _common.console.print(f"[bold red]error:[/] {exc.format_message()}", highlight=False)
            sys.exit(2)
        as_json = "--json" in argv
        _common.set_json_mode(as_json)
        if as_json and "--version" in argv[: _first_word(argv)]:
            with contextlib.suppress(typer.Exit):  # --json is not a root option: answer here
                print_version(True)
            sys.exit(0)
        if not as_json:
            return super().__call__(args=argv, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            code = super().__call__(args=argv, **kwargs)
        except typer.TyperException as exc:  # usage errors (Typer's own copy of click's)
            message, code = _usage(exc)
            _json_error(message, type(exc).__name__, code)
            _common.console.print(f"[bold red]error:[/] {message}", highlight=False)
            sys.exit(code)
        except typer.Abort:
            _json_error("aborted", "Abort", 1)
            sys.exit(1)
        except Exception as exc:
            log.exception("unexpected error")
            _json_error(f"unexpected error: {exc}", type(exc).__name__, 1)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def version_text() -> str:
    """Return ``persona X.Y.Z`` (the installed package version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"persona {version('persona')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "persona (not installed)"


def print_version(value: bool) -> None:
    """`--version` callback: print the version (JSON in --json mode) and exit 0."""
    if not value:
        return
    text = version_text()
    if _common.json_mode():
        _common.emit_json({"name": "persona", "version": text.split(" ", 1)[1]})
    else:
        out = _common.json_stdout()
        out.write(text + "\n")
        out.flush()
    raise typer.Exit()
