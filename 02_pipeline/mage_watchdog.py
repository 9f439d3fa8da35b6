"""Re-fire Mage runs whose blocks never start (Mage 0.9.80's process-queue stall).

Mage 0.9.80 can lose a run's job in its process queue (its log shows ``KeyError:
'pipeline_run_N'``): the run then shows `running` with every block `initial` until another
trigger wakes the queue (docs/pipeline.md). `mage_server.py` runs `watch` in a daemon
thread of the server: every few seconds it reads Mage's own database (read-only) and,
for a run none of whose blocks started `MAGE_STALL_REFIRE_S` seconds after it was
created, fires the pipeline's API trigger again with the run's variables (the cycle is
replay-safe), at most `MAX_REFIRES` times per stalled chain. The detection rule is the one
of the test harness (tests/e2e/mage_harness.py `stalled`). Standard library only.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("persona.mage.watchdog")
MAX_REFIRES = 2
POLL_S = 5.0

_RUNS_SQL = """
SELECT r.id, r.pipeline_uuid, r.variables,
       (julianday('now') - julianday(r.created_at)) * 86400.0,
       (SELECT group_concat(b.status) FROM block_run b WHERE b.pipeline_run_id = r.id)
FROM pipeline_run r
WHERE lower(r.status) IN ('initial', 'running')
"""
_TRIGGER_SQL = """
SELECT id, token FROM pipeline_schedule
WHERE pipeline_uuid = ? AND schedule_type = 'api' AND status = 'active' ORDER BY id LIMIT 1
"""


@dataclass(frozen=True)
class Run:
    """An unfinished pipeline run as Mage's database shows it."""

    id: int
    pipeline: str
    variables: dict[str, object]
    age_s: float
    block_statuses: tuple[str, ...]


def stalled(run: Run, stall_s: float) -> bool:
    """Whether `run` lost its job: `stall_s` after its creation no block has started."""
    return run.age_s > stall_s and all(s.lower() == "initial" for s in run.block_statuses)


def to_refire(runs: Iterable[Run], stall_s: float, fired: dict[int, int]) -> list[tuple[Run, int]]:
    """The stalled runs to fire again, each with its place in the chain (1, 2...).

    Args:
        runs: Unfinished runs.
        stall_s: The stall threshold, seconds.
        fired: Runs already handled: stalled run id -> its place in the chain (updated by
            the caller; a run fired by the watchdog is its stalled parent's place + 1).
    """
    return [
        (run, fired.get(-run.id, 0) + 1)
        for run in runs
        if run.id not in fired and stalled(run, stall_s) and fired.get(-run.id, 0) < MAX_REFIRES
    ]


def read_runs(db: Path) -> list[Run]:
    """The unfinished runs in Mage's sqlite database (empty while it is not there yet)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(_RUNS_SQL).fetchall()
    except sqlite3.OperationalError:
        return []  # not migrated yet, or locked for a moment
    finally:
        conn.close()
    return [
        Run(int(rid), str(pipe), _variables(raw), float(age or 0), tuple((blocks or "").split(",")))
        for rid, pipe, raw, age, blocks in rows
    ]


def _variables(raw: object) -> dict[str, object]:
    try:
        value = json.loads(str(raw)) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def fire(db: Path, base: str, run: Run) -> int | None:
    """POST the pipeline's API trigger with `run`'s variables; the new run's id."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute(_TRIGGER_SQL, (run.pipeline,)).fetchone()
    finally:
        conn.close()
    if row is None:
        log.warning("run %s stalled but %s has no active API trigger", run.id, run.pipeline)
        return None
    url = f"{base}/api/pipeline_schedules/{row[0]}/pipeline_runs/{row[1]}"
    body = json.dumps({"pipeline_run": {"variables": run.variables}}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(json.loads(resp.read())["pipeline_run"]["id"])


def watch(db: Path, base: str, stall_s: float, stop: threading.Event) -> None:
    """Poll `db` every `POLL_S` seconds and re-fire stalled runs until `stop` is set."""
    fired: dict[int, int] = {}
    while not stop.wait(POLL_S):
        try:
            for run, place in to_refire(read_runs(db), stall_s, fired):
                fired[run.id] = place
                new_id = fire(db, base, run)
                log.warning(
                    "run %s of %s: no block started %.0f s after it was created (Mage's"
                    " process-queue stall); fired again as run %s (%s of %s)",
                    run.id, run.pipeline, run.age_s, new_id, place, MAX_REFIRES,
                )  # fmt: skip
                if new_id is not None:
                    fired[-new_id] = place
        except Exception:  # the watchdog must never take the server down
            log.exception("stall watchdog: check failed; retrying")


def start(project: str) -> threading.Event | None:
    """Start `watch` in a thread when MAGE_STALL_REFIRE_S (default 90) > 0; its stop event."""
    stall_s = float(os.environ.get("MAGE_STALL_REFIRE_S") or "90")
    if stall_s <= 0:
        return None
    data = os.environ.get("MAGE_DATA_DIR") or os.path.expanduser("~/.mage_data")
    db = Path(data) / Path(project).name / "mage-ai.db"
    base = f"http://127.0.0.1:{os.environ.get('MAGE_PORT', '6789')}"
    stop = threading.Event()
    thread = threading.Thread(target=watch, args=(db, base, stall_s, stop), daemon=True)
    thread.start()
    # print: Mage configures logging only later; this line must reach the container log.
    print(f"stall watchdog on: runs idle {stall_s:.0f} s are fired again ({db})", flush=True)
    return stop
