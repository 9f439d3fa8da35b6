"""A real Mage server for tests and benchmarks: start it, fire its API trigger, follow runs.

`start_mage.sh` runs in its own process group on a free port; runs are followed in Mage's
own database (read-only), not through the authenticated API. Every wait is on state with
a budget (`budget_s`) that survives a 4x slow-down of a busy 2-core machine.

Also the harness of the compose stack's test (test_containers.py): JSON over HTTP
(`http`), free ports, `MageApi` (log in, find the API trigger, run a month and follow it
through the authenticated API), the champion alias in MLflow and waiting for the API to
serve a version.
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
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "02_pipeline" / "persona_pipeline"
START = REPO / "02_pipeline" / "start_mage.sh"
DONE = ("completed", "failed", "cancelled")
MAGE_CLIENT_ID = "zkWlN0PkIKSN0C11CfUHUj84OT5XOJ6tDZ6bDRO2"  # Mage's built-in web client key
PIPELINE = "monthly_persona_cycle"
# A run whose blocks have not started this long after its trigger is fired again (see
# `Mage.fire`); a block normally starts within seconds, so 90 s survives a 4x slow-down.
STALL_S = float(os.environ.get("E2E_MAGE_STALL_S", "90"))
MAX_REFIRES = 2


def stalled(seconds_since_fired: float, block_statuses: Iterable[str]) -> bool:
    """Whether a run lost its job: `STALL_S` after its trigger, no block has started.

    Mage 0.9.80 can lose a run's job in its process queue (its log shows
    ``KeyError: 'pipeline_run_N'``): the run then waits until another trigger wakes the
    queue. The harness fires the month again (the cycle is replay-safe).
    """
    return seconds_since_fired > STALL_S and all(s == "initial" for s in block_statuses)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on the loopback interface (all held while choosing)."""
    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def wait(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    *,
    unreachable_as_zero: bool = False,
) -> Any:
    """One JSON request; returns ``(status, parsed body or text)`` whatever the status.

    Args:
        method: HTTP method.
        url: Where.
        body: JSON body (None: no body).
        headers: Extra headers (``Content-Type: application/json`` is always sent).
        timeout: Seconds.
        unreachable_as_zero: Answer ``(0, reason)`` instead of raising when nothing answers.
    """
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as exc:
        # HTTPException: an answer cut short (IncompleteRead) is no answer, e.g. while the
        # container behind nginx is being killed mid-response.
        if not unreachable_as_zero:
            raise
        return 0, str(exc)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def trigger_url(base: str, schedule_id: int, token: str) -> str:
    """The URL of a Mage API trigger (the token authenticates it)."""
    return f"{base}/api/pipeline_schedules/{schedule_id}/pipeline_runs/{token}"


def fire_month(base: str, schedule_id: int, token: str, month: str) -> dict[str, Any]:
    """POST the monthly cycle for `month` to the API trigger; the new `pipeline_run`."""
    url = trigger_url(base, schedule_id, token)
    status, body = http("POST", url, {"pipeline_run": {"variables": {"month": month}}})
    assert status == 200 and "pipeline_run" in body, body
    return dict(body["pipeline_run"])


def seed_months(
    persona: Callable[..., dict[str, Any]], data: Path, months: list[str], rows: int
) -> None:
    """Generate `months` as CSV files, ingest them and bootstrap v1, all through the CLI.

    Args:
        persona: Runs ``persona <args> --json`` against the stack; its parsed output.
        data: Folder for the generated files.
        months: ``YYYY-MM`` months of one year, consecutive from January.
        rows: Rows per month.
    """
    span = f"1-{len(months)}"
    persona("data", "generate", "--out", str(data), "--months", span, "--n", str(rows),
            "--format", "csv")  # fmt: skip
    ingested = persona("data", "ingest", str(data))
    assert sum(f["rows_new"] for f in ingested["files"]) == rows * len(months), ingested
    boot = persona("model", "bootstrap")
    assert boot["version"] == "1" and "champion" in boot["aliases"], boot


class MageApi:
    """A Mage server through its authenticated REST API (login on, API trigger token set).

    Args:
        base: Mage's base URL.
        email: Owner account (MAGE_ADMIN_EMAIL).
        password: Its password (MAGE_ADMIN_PASSWORD).
        token: The expected API trigger token (MAGE_API_TOKEN).
    """

    def __init__(self, base: str, email: str, password: str, token: str) -> None:
        self.base, self.token = base, token
        login = {"session": {"email": email, "password": password}}
        status, body = http("POST", f"{base}/api/sessions", login, {"X-API-KEY": MAGE_CLIENT_ID})
        assert status == 200, body
        self.headers = {
            "X-API-KEY": MAGE_CLIENT_ID,
            "Cookie": f"oauth_token={body['session']['token']}",
        }
        url = f"{base}/api/pipelines/{PIPELINE}/pipeline_schedules"
        status, body = http("GET", url, headers=self.headers)
        assert status == 200, body
        api = [s for s in body["pipeline_schedules"] if s["schedule_type"] == "api"]
        assert len(api) == 1 and api[0]["token"] == token, body
        self.schedule_id = int(api[0]["id"])
        self.refires = {"server": 0, "harness": 0}

    def run_month(
        self, month: str, timeout: float, poll_s: float = 2.0, log_tail: Callable[[], str] = str
    ) -> dict[str, Any]:
        """Fire the cycle for `month` and follow the run to its end.

        A server with the stall watchdog (MAGE_STALL_REFIRE_S, `02_pipeline/mage_watchdog.py`)
        fires a stalled run again itself: the newest run of the month on this trigger is
        followed. Only if none appears `STALL_S` after the watchdog's own threshold does the
        harness fire the month itself (counted in `self.refires["harness"]`).

        Args:
            month: ``YYYY-MM``.
            timeout: Seconds the run may take.
            poll_s: Seconds between status reads.
            log_tail: The end of Mage's log, for the timeout message.

        Returns:
            The final `pipeline_run` (its ``status`` is completed, failed or cancelled).
        """
        run = fire_month(self.base, self.schedule_id, self.token, month)
        deadline = time.monotonic() + timeout
        fired_at, refired = time.monotonic(), 0
        while run["status"] not in DONE:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"Mage run {run['id']} for {month} still {run['status']} after {timeout}s;"
                    f" Mage's log ends:\n{log_tail()[-3000:]}"
                )
            time.sleep(poll_s)
            newer = self._newest_run(month)
            if newer is not None and int(newer["id"]) > int(run["id"]):
                self.refires["server"] += 1  # the server's watchdog fired it again
                run, fired_at = newer, time.monotonic()
            status, body = http("GET", f"{self.base}/api/pipeline_runs/{run['id']}",
                                headers=self.headers)  # fmt: skip
            assert status == 200, body
            run = body["pipeline_run"]
            blocks = [str(b.get("status", "")).lower() for b in run.get("block_runs") or []]
            if refired < MAX_REFIRES and stalled(time.monotonic() - fired_at - STALL_S, blocks):
                run = fire_month(self.base, self.schedule_id, self.token, month)
                fired_at, refired = time.monotonic(), refired + 1
                self.refires["harness"] += 1
        return dict(run)

    def _newest_run(self, month: str) -> dict[str, Any] | None:
        """The newest run of this trigger whose variables are `month` (None if unreadable)."""
        url = f"{self.base}/api/pipeline_schedules/{self.schedule_id}/pipeline_runs?_limit=10"
        status, body = http("GET", url, headers=self.headers)
        if status != 200 or not isinstance(body, dict):
            return None
        runs = [
            r for r in body.get("pipeline_runs") or []
            if (r.get("variables") or {}).get("month") == month
        ]  # fmt: skip
        return max(runs, key=lambda r: int(r["id"])) if runs else None


def champion_version(
    mlflow: str,
    model: str = "persona-classifier",
    headers: dict[str, str] | None = None,
    alias: str = "champion",
) -> str:
    """The version an alias (``champion``) points at, read from the MLflow REST API."""
    url = f"{mlflow}/api/2.0/mlflow/registered-models/get?name={model}"
    status, body = http("GET", url, headers=headers, timeout=30)
    assert status == 200, body
    aliases = {a["alias"]: a["version"] for a in body["registered_model"].get("aliases", [])}
    return str(aliases[alias])


def wait_api_version(api: str, version: str, timeout: float, poll_s: float = 1.0) -> dict[str, Any]:
    """Wait until the API's `/model` is `version`; its body."""
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = http("GET", f"{api}/model", timeout=30, unreachable_as_zero=True)
        if status == 200 and str(body.get("version")) == version:
            return dict(body)
        time.sleep(poll_s)
    raise AssertionError(f"the API at {api} never served version {version}: {body}")


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


class MageRefire(UserWarning):
    """The harness fired a stalled Mage run again (shown in pytest's warnings summary)."""


@dataclass
class Mage:
    """A started server: its URL, database, trigger and log.

    Attributes:
        refires: Stalled runs `fire` fired again; each one is also reported as a
            `MageRefire` warning in the test output.
    """

    base: str
    port: int
    db: MageDb
    token: str
    schedule_id: int
    log: Path
    budget_s: float
    refires: int = 0

    def fire(self, month: str) -> tuple[str, dict[str, str], float]:
        """Run the monthly cycle for `month` through the API trigger and wait for the end.

        Returns:
            The final status, the block statuses and the seconds from the POST to the end.
        """
        started = time.monotonic()
        deadline = started + self.budget_s
        run_id = int(fire_month(self.base, self.schedule_id, self.token, month)["id"])
        fired_at, refired = started, 0
        while True:
            status = self.db.run_status(run_id) or ""
            if status in DONE:
                return status, self.db.block_statuses(run_id), time.monotonic() - started
            now = time.monotonic()
            if now >= deadline:
                raise AssertionError(
                    f"timed out after {self.budget_s}s waiting for Mage run {run_id} ({month}); "
                    f"log {self.log}"
                )
            blocks = self.db.block_statuses(run_id).values()
            if refired < MAX_REFIRES and stalled(now - fired_at, blocks):
                stalled_id = run_id
                run_id = int(fire_month(self.base, self.schedule_id, self.token, month)["id"])
                fired_at, refired = time.monotonic(), refired + 1
                self.refires += 1
                warnings.warn(
                    f"Mage run {stalled_id} of {month} stalled (no block started in "
                    f"{STALL_S:g} s): fired again as run {run_id} "
                    f"({self.refires} re-fire(s) on this server)",
                    MageRefire,
                    stacklevel=2,
                )
            time.sleep(0.25)


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

    The server's stall watchdog is off (MAGE_STALL_REFIRE_S=0): the harness alone fires a
    stalled run again, so the two never both do.

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
        "MAGE_STALL_REFIRE_S": "0",  # `Mage.run_month` fires a stalled run again itself
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
            found = db.api_trigger(PIPELINE)
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
