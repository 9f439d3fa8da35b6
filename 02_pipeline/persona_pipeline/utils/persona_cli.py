"""Helpers shared by the blocks: run the app env's `persona` CLI and parse its JSON.

Mage runs in its own env (.venv-mage); the platform code lives in the app env (.venv).
Blocks never import `persona`: they run `$PERSONA_BIN ... --json` as a subprocess in
PERSONA_WORKDIR (default: the repository root, so `.env` and relative `var/` paths resolve
as for `make` targets) and return the parsed JSON document.
"""

import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parents[3]
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def persona_bin() -> str:
    """Path of the app env's `persona` command (PERSONA_BIN, default <repo>/.venv/bin/persona)."""
    return os.environ.get("PERSONA_BIN") or str(REPO / ".venv" / "bin" / "persona")


def check_month(value, name="month"):
    """Return `value` as a YYYY-MM string or raise ValueError naming the variable."""
    text = str(value or "").strip()
    if not MONTH_RE.match(text):
        raise ValueError(f"pipeline variable {name!r} must be YYYY-MM, got {value!r}")
    return text


def run_persona(*args, timeout=900):
    """Run `persona <args> --json` and return its JSON document (raise on failure)."""
    cmd = [persona_bin(), *[str(a) for a in args], "--json"]
    proc = subprocess.run(
        cmd,
        cwd=os.environ.get("PERSONA_WORKDIR") or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.stderr:
        print(proc.stderr[-4000:])
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        payload = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        payload = {"stdout": proc.stdout[-2000:]}
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {payload or proc.stderr}")
    return payload


def previous_month(when):
    """The calendar month before `when` (a datetime or ISO string) as YYYY-MM."""
    text = str(when)[:7]
    year, month = int(text[:4]), int(text[5:7])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def month_vars(kwargs):
    """The pipeline variables `month` and optional `reference_month` from a block's kwargs.

    An empty `month` (the monthly schedule) means the month before the run's execution date.
    """
    month = kwargs.get("month") or previous_month(kwargs.get("execution_date") or _now())
    month = check_month(month)
    reference = kwargs.get("reference_month") or None
    return month, (check_month(reference, "reference_month") if reference else None)


def _now():
    return datetime.now(UTC).isoformat()


def verdict(check):
    """The drift verdict of a `persona monitor --json` result (or of a skipped block)."""
    if not isinstance(check, dict):
        return None
    decision = check.get("decision")
    if isinstance(decision, dict):
        return decision.get("verdict")
    return decision or check.get("verdict")


def postgres_env_from_database_url():
    """Fill POSTGRES_* (read by io_config.yaml) from DATABASE_URL when they are unset.

    Returns:
        True when DATABASE_URL points at PostgreSQL, else False (embedded SQLite).
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        return False
    parts = urlparse(url)
    defaults = {
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return True
