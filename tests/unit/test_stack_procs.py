"""The process bookkeeping behind `make up` / `make down` (scripts/stack/procs.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "stack"))

import procs  # noqa: E402


def test_stop_kills_the_whole_tree_including_children_that_left_the_group(tmp_path: Path) -> None:
    # A service with a child in its group and one that escapes into its own session.
    script = "sleep 300 & setsid sleep 301 & echo started; wait"
    record = procs.spawn(
        "svc",
        ["bash", "-c", script],
        {"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log=tmp_path / "log" / "svc.log",
        run_dir=tmp_path / "run",
    )
    deadline = time.monotonic() + 10
    while len(procs.members(record)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = procs.members(record)
    assert len(started) == 3, started
    assert procs.read_record(tmp_path / "run", "svc") == record
    assert procs.alive(record)

    procs.stop(record, timeout=5)

    assert procs.members(record) == []
    assert not procs.alive(record)
    assert all(not Path(f"/proc/{pid}").exists() or _zombie(pid) for pid in started)
    assert "started" in (tmp_path / "log" / "svc.log").read_text()


def test_a_recycled_pid_is_not_taken_for_the_service(tmp_path: Path) -> None:
    record = procs.spawn(
        "svc",
        ["sleep", "30"],
        {"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        log=tmp_path / "svc.log",
        run_dir=tmp_path,
    )
    try:
        stale = dict(record, start_time=int(record["start_time"]) - 1)
        assert procs.alive(record) and not procs.alive(stale)
    finally:
        procs.stop(record, timeout=5)
    assert procs.stop(record) == []  # idempotent: nothing left to kill


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
