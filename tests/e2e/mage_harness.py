"""A real Mage server for tests and benchmarks: start it, fire its API trigger, follow runs.

`start_mage.sh` runs in its own process group on a free port; runs are followed in Mage's
own database (read-only), not through the authenticated API. Every wait is on state with
a budget (`budget_s`) that survives a 4x slow-down of a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "02_pipeline" / "persona_pipeline"
START = REPO / "02_pipeline" / "start_mage.sh"
DONE = ("completed", "failed", "cancelled")


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """One JSON request; returns ``(status, parsed body or text)``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class MageDb:
    """Read-only view of the running server's own database (runs, block runs, triggers)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # tables not migrated yet, or locked for a moment
        finally:
            conn.close()

    def api_trigger(self, pipeline: str) -> tuple[int, str] | None:
        rows = self.query(
            "SELECT id, token FROM pipeline_schedule WHERE pipeline_uuid = ? AND name = 'api'",
            pipeline,
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def run_status(self, run_id: int) -> str | None:
        rows = self.query("SELECT status FROM pipeline_run WHERE id = ?", run_id)
        return str(rows[0][0]).lower() if rows else None

    def block_statuses(self, run_id: int) -> dict[str, str]:
        rows = self.query(
            "SELECT block_uuid, status FROM block_run WHERE pipeline_run_id = ?", run_id
        )
        return {str(b): str(s).lower() for b, s in rows}


@dataclass
class Mage:
    """A started server: its URL, database, trigger and log."""

    base: str
    port: int
    db: MageDb
    token: str
    schedule_id: int
    log: Path
    budget_s: float

    def fire(self, month: str) -> tuple[str, dict[str, str], float]:
        """Run the monthly cycle for `month` through the API trigger and wait for the end.

        Returns:
            The final status, the block statuses and the seconds from the POST to the end.
        """
        url = f"{self.base}/api/pipeline_schedules/{self.schedule_id}/pipeline_runs/{self.token}"
        started = time.monotonic()
        status, body = http("POST", url, {"pipeline_run": {"variables": {"month": month}}})
        assert status == 200 and "pipeline_run" in body, body
        run_id = int(body["pipeline_run"]["id"])

        def ended() -> str | None:
            found = self.db.run_status(run_id) or ""
            return found if found in DONE else None

        final = wait(ended, self.budget_s, f"Mage run {run_id} ({month}); log {self.log}", 0.25)
        return final, self.db.block_statuses(run_id), time.monotonic() - started


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and (int(fields[2]) == pgid or int(fields[3]) == pgid):
            pids.append(int(entry.name))
    return pids


def _stop(server: subprocess.Popen[bytes]) -> list[int]:
    """SIGTERM the group, then SIGKILL what is left after 20 s; returns the leftovers."""
    pgid = server.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return []
    deadline = time.monotonic() + 20
    while _group_pids(pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _group_pids(pgid)
    if left:
        with suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(2)
    server.wait(timeout=30)
    return left


@contextmanager
def mage_server(env: dict[str, str], state: Path, budget_s: float = 480.0) -> Iterator[Mage]:
    """Start `start_mage.sh` with `env` (MAGE_DATA_DIR under `state`) until the block ends.

    Args:
        env: Environment of the server (settings of the stores, MAGE_API_TOKEN...).
        state: Folder for Mage's state and the log.
        budget_s: Budget of each wait (server start, one pipeline run).

    Yields:
        The running server. On the way out the whole process group is stopped; an
        AssertionError says so if a process had to be killed.
    """
    port = free_port()
    env = {
        **env,
        "MAGE_PORT": str(port),
        "MAGE_DATA_DIR": str(state / "mage_data"),
        "SCHEDULER_TRIGGER_INTERVAL": "1",
    }
    log = state / "mage.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", str(START)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    db = MageDb(Path(env["MAGE_DATA_DIR"]) / PROJECT.name / "mage-ai.db")
    try:
        token = env["MAGE_API_TOKEN"]

        def trigger_with_token() -> tuple[int, str] | None:
            found = db.api_trigger("monthly_persona_cycle")
            return found if found and found[1] == token else None

        trigger = wait(trigger_with_token, budget_s, "the API trigger with MAGE_API_TOKEN")

        def up() -> bool:
            try:
                return int(http("GET", f"{base}/")[0]) < 500
            except OSError:
                return False

        wait(up, budget_s, f"mage start; log {log}", 1.0)
        yield Mage(base, port, db, trigger[1], trigger[0], log, budget_s)
    finally:
        left = _stop(server)
    assert not left, f"Mage left processes {left}: {log.read_text()[-3000:]}"
