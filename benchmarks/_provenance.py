"""Where a benchmark figure came from: commit, time, machine load, CPUs and tool versions.

Every script in `benchmarks/` calls `begin()` before its first timed step and stores
`finish(started)` under ``"provenance"`` in its JSON (`write_json` does both for scripts
that write one document). `benchmarks/report.py` reads it to mark a row stale when the code
it measured changed after the run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
PACKAGES = ("numpy", "pandas", "pyarrow", "scipy", "scikit-learn", "psycopg2-binary",
            "psycopg2", "SQLAlchemy", "mlflow", "evidently", "pyspark", "Flask", "gunicorn",
            "mage-ai")  # fmt: skip
TOOLS = {"java": ["java", "-version"], "postgres": ["psql", "--version"],
         "wrk": ["wrk", "--version"], "nginx": ["nginx", "-v"]}  # fmt: skip


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=30, check=True)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _tool_version(command: list[str]) -> str | None:
    path = shutil.which(command[0]) or shutil.which(command[0], path="/usr/sbin:/sbin")
    if path is None:
        return None
    try:
        done = subprocess.run([path, *command[1:]], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else None


def versions() -> dict[str, str]:
    """Python, the installed packages of `PACKAGES` and the command-line tools found."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    for name, command in TOOLS.items():
        version = _tool_version(command)
        if version:
            found[name] = version
    return found


def begin() -> dict[str, Any]:
    """Record the start of a run: commit, time, load average before."""
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "src",
                           "benchmarks")),
        "started_at": _now(),
        "load_avg_before": _load(),
        "cpu_count": os.cpu_count(),
        "argv": sys.argv[1:],
    }  # fmt: skip


def finish(started: dict[str, Any]) -> dict[str, Any]:
    """The whole provenance record: `begin`'s plus the end time, load after and versions."""
    return {**started, "finished_at": _now(), "load_avg_after": _load(), "versions": versions()}


def write_json(name: str, document: dict[str, Any], started: dict[str, Any]) -> Path:
    """Write ``benchmarks/out/<name>.json`` with its provenance; return the path."""
    path = OUT / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**document, "provenance": finish(started)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
