"""Derive the local-process stack from docker-compose.yml (one source for both).

`make up` runs the compose services as local processes. Their environment and commands are
read from the compose file, interpolated exactly like `docker compose` does (shell env >
`.env` > `.env.example` defaults), and then *localized*: in-network service addresses
(``postgres:5432``, ``http://mlflow:5000``...) become ``127.0.0.1:<local port>``, container
paths (``/app``, ``/opt/app-venv``...) become repo paths, and ``0.0.0.0`` binds become
``127.0.0.1``. Pure functions only; no process is started here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_SERVICE_ADDR = re.compile(r"(?<=[@/])(postgres|mlflow|gcs|api|mage):(\d+)")


class ComposeError(Exception):
    """The compose file or its variables are wrong; the message says what and where."""


@dataclass(frozen=True)
class Local:
    """Where the local processes live: repo, state folder, ports of each service."""

    repo: Path
    var_dir: Path
    ports: Mapping[str, int]


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env`-style file with python-dotenv (as pydantic-settings reads `.env`).

    No `${VAR}` expansion inside the file (compose interpolation is `interpolate`'s job);
    a name without ``=`` is skipped.

    Args:
        path: The file; a missing file gives an empty dict.

    Returns:
        The variables in file order.
    """
    if not path.is_file():
        return {}
    values = dotenv_values(path, interpolate=False, encoding="utf-8")
    return {key: value for key, value in values.items() if value is not None}


def variables(repo: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The interpolation variables: `.env.example` < `.env` < the process environment."""
    values = read_env_file(repo / ".env.example")
    values.update(read_env_file(repo / ".env"))
    values.update(environ)
    return values


def interpolate(text: str, values: Mapping[str, str], where: str = "") -> str:
    """Expand `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}` and `$$`.

    Raises:
        ComposeError: A variable without default is not defined.
    """

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = values.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is None:
            if op in (":-", "-"):
                return arg or ""
            raise ComposeError(f"variable {name} is not set (used in {where or text!r})")
        return value

    return _VAR.sub(expand, text)


def load_compose(path: Path) -> dict[str, Any]:
    """Read and minimally check the compose file.

    Raises:
        ComposeError: Not a mapping with `services`.
    """
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ComposeError(f"{path}: expected a mapping with a `services` section")
    return data


def localize(value: str, local: Local) -> str:
    """Map in-network addresses, container paths and wildcard binds to the local stack."""

    def addr(match: re.Match[str]) -> str:
        service = match.group(1)
        port = local.ports.get(service, int(match.group(2)))
        return f"127.0.0.1:{port}"

    value = _SERVICE_ADDR.sub(addr, value)
    value = value.replace("0.0.0.0", "127.0.0.1")
    paths = (
        ("/opt/app-venv", local.repo / ".venv"),
        ("/opt/mage-venv", local.repo / ".venv-mage"),
        ("/app/var", local.var_dir),
        ("/app", local.repo),
    )
    for prefix, target in paths:
        value = re.sub(rf"(?<![\w/.-]){re.escape(prefix)}(?=/|$)", str(target), value)
    return value


def service_environment(
    compose: Mapping[str, Any], service: str, values: Mapping[str, str], local: Local
) -> dict[str, str]:
    """The `environment:` of a compose service, interpolated and localized."""
    spec = _service(compose, service)
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    out: dict[str, str] = {}
    for key, raw in env.items():
        text = "" if raw is None else str(raw)
        out[key] = localize(interpolate(text, values, f"{service}.environment.{key}"), local)
    return out


def service_command(
    compose: Mapping[str, Any], service: str, values: Mapping[str, str], local: Local
) -> list[str]:
    """The `command:` of a compose service, interpolated and localized.

    A `--port=<container port>` argument becomes the service's local port.
    """
    spec = _service(compose, service)
    command = spec.get("command")
    if not isinstance(command, list) or not command:
        raise ComposeError(f"service {service}: expected `command:` as a non-empty list")
    port = local.ports.get(service)
    args = []
    for raw in command:
        arg = localize(interpolate(str(raw), values, f"{service}.command"), local)
        if port is not None and re.fullmatch(r"--port=\d+", arg):
            arg = f"--port={port}"
        args.append(arg)
    return args


def _service(compose: Mapping[str, Any], service: str) -> Mapping[str, Any]:
    try:
        spec = compose["services"][service]
    except KeyError:
        raise ComposeError(f"docker-compose.yml has no service {service!r}") from None
    if not isinstance(spec, dict):
        raise ComposeError(f"service {service}: expected a mapping")
    return spec
