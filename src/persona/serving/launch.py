"""Start a server process, wait (bounded) until it answers, stop its whole process group.

The one launcher of the API under gunicorn (and of the other servers the tests and
benchmarks start): `scripts/demo.py`, `benchmarks/serving.py`, `tests/faults.py` and the
integration tests use it. Each server runs in its own session, so `Server.stop` ends the
master and its workers together. HTTP checks use requests, the package's one HTTP client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from persona.errors import PersonaError

# The gunicorn config of the API as a package module (`persona serve` runs the same).
GUNICORN_CONFIG = "python:persona.serving.gunicorn_config"
Ready = Callable[[int, bytes], bool]


class LaunchError(PersonaError):
    """A server exited or did not answer in time; the message ends with its log's tail."""


def status_ok(status: int, body: bytes) -> bool:
    """Ready when the answer is 200."""
    return status == 200


def gunicorn_command(
    config: str | Path = GUNICORN_CONFIG, bin_dir: Path | None = None
) -> list[str]:
    """The command line of the API under gunicorn.

    Args:
        config: A gunicorn ``-c`` value: the package module (default) or a config file.
        bin_dir: Folder of the `gunicorn` executable (default: beside this Python).

    Returns:
        ``[gunicorn, "-c", config]``.
    """
    folder = bin_dir or Path(sys.executable).parent
    return [str(folder / "gunicorn"), "-c", str(config)]


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Stop a process started in its own session, with its group (SIGTERM, then SIGKILL).

    Args:
        proc: The process (its pid is its process group id).
        timeout_s: Seconds to wait after SIGTERM before SIGKILL, and after SIGKILL.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class Server:
    """A started server: its process, base URL and log file (None: output inherited).

    Attributes:
        proc: The process; the leader of its own process group.
        url: Base URL, e.g. ``http://127.0.0.1:8000``.
        log: Where its stdout and stderr go, if a file.
        started: `time.monotonic()` at start.
    """

    proc: subprocess.Popen[bytes]
    url: str
    log: Path | None
    started: float

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the log ('' without a log file)."""
        if self.log is None or not self.log.is_file():
            return ""
        return self.log.read_text(errors="replace")[-chars:]

    def wait(
        self,
        path: str = "/ready",
        *,
        timeout_s: float = 60.0,
        ready: Ready = status_ok,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        interval_s: float = 0.3,
    ) -> None:
        """Poll ``url + path`` until `ready(status, body)` holds.

        Args:
            path: What to request.
            timeout_s: Longest wait.
            ready: When the answer means ready (default: status 200).
            method: HTTP method.
            body: Request body (POST checks).
            headers: Request headers.
            interval_s: Seconds between tries.

        Raises:
            LaunchError: The process exited, or `timeout_s` passed.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise LaunchError(
                    f"server exited ({self.proc.returncode}) before {path} was ready:\n"
                    + self.log_tail()
                )
            try:
                status, answer = request(
                    method, self.url + path, body, headers, min(5.0, timeout_s)
                )
                if ready(status, answer):
                    return
            except OSError:  # not listening yet, reset while workers boot
                pass
            if time.monotonic() >= deadline:
                raise LaunchError(
                    f"server at {self.url}{path} not ready after {timeout_s:g} s:\n"
                    + self.log_tail()
                )
            time.sleep(interval_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server and everything in its process group."""
        stop_process(self.proc, timeout_s)


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 5.0,
) -> tuple[int, bytes]:
    """One HTTP request; (status, body) whatever the status.

    Raises:
        OSError: No answer (refused, reset, timed out).
    """
    # requests.RequestException is an OSError
    response = requests.request(
        method, url, data=body, headers=dict(headers or {}), timeout=timeout_s
    )
    return int(response.status_code), bytes(response.content)


def start(
    command: Sequence[str],
    url: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log: Path | None = None,
) -> Server:
    """Start `command` in its own session (process group).

    Args:
        command: The command line.
        url: Its base URL (for `Server.wait`).
        env: Its whole environment (default: this process's).
        cwd: Its working folder.
        log: File for its stdout and stderr (default: inherited).

    Returns:
        The started server (not waited for).
    """
    environment = dict(os.environ if env is None else env)
    if log is None:
        proc = subprocess.Popen(list(command), env=environment, cwd=cwd, start_new_session=True)
    else:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(command),
                env=environment,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    return Server(proc, url, log, time.monotonic())


def start_gunicorn(
    url: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    log: Path | None = None,
    config: str | Path = GUNICORN_CONFIG,
) -> Server:
    """Start the API under gunicorn (like `make serve`); settings come from `env`.

    Args:
        url: Its base URL, ``http://API_HOST:API_PORT``.
        env: Its whole environment (API_*, MODEL_*...; default: this process's).
        cwd: Its working folder (relative settings resolve there).
        log: File for its output (default: inherited).
        config: The gunicorn config (default: the package module).

    Returns:
        The started server; call `Server.wait` for `/health` or `/ready`.
    """
    return start(gunicorn_command(config), url, env=env, cwd=cwd, log=log)
