"""Readiness probes of the local stack (TCP, HTTP) and a bounded wait."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import procs


def tcp(port: int, host: str = "127.0.0.1") -> str | None:
    """None when something accepts connections on host:port, else the reason."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def http(url: str) -> str | None:
    """None when GET url answers 200, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=3.0) as resp:
            return None if resp.status == 200 else f"{url}: HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {exc}"


def wait(probe: Callable[[], str | None], record: Mapping[str, Any], timeout: float) -> str | None:
    """Poll `probe` until it passes (None), the process dies or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    why = probe()
    while why is not None:
        if not procs.alive(record):
            return f"process {record['pid']} exited ({why})"
        if time.monotonic() > deadline:
            return f"timed out after {timeout:.0f}s ({why})"
        time.sleep(0.5)
        why = probe()
    return None


def tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file ('' if missing)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
