"""Process bookkeeping of the local stack: start in a new session, record, stop for sure.

Each service is started with `setsid` semantics (its own session and process group). The
pid file (`var/run/<service>.pid`, JSON) records pid, process group, session and the
kernel start time, so `stop` never signals a recycled pid. Stopping signals the service,
waits, then SIGKILLs every process still in its group, its session or below it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces/parens: fields after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Kernel start time (clock ticks since boot) of a pid, None if gone."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(record: Mapping[str, Any]) -> bool:
    """Whether the recorded process still runs (same pid AND same start time, not a zombie)."""
    fields = _stat(int(record["pid"]))
    if fields is None or fields[0] == "Z":
        return False
    return int(fields[19]) == int(record["start_time"])


def members(record: Mapping[str, Any]) -> list[int]:
    """Live pids in the record's process group or session, or descending from its pid."""
    pgid, sid, root = int(record["pgid"]), int(record["sid"]), int(record["pid"])
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[2]) == pgid or int(fields[3]) == sid:
            found.add(pid)
    for pid in parents:
        seen, cur = 0, pid
        while cur > 1 and seen < 64:
            if cur == root:
                found.add(pid)
                break
            cur, seen = parents.get(cur, 0), seen + 1
    if not alive(record):
        found.discard(root)
    return sorted(found)


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path,
    log: Path,
    run_dir: Path,
    user: str | None = None,
) -> dict[str, Any]:
    """Start `argv` in a new session with output appended to `log`; write the pid file.

    Returns:
        The pid record (also written to `run_dir/<name>.pid`).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {time.strftime('%F %T')} start: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=pwd.getpwnam(user).pw_gid if user else None,
            extra_groups=[] if user else None,
        )
    record = {
        "name": name,
        "pid": proc.pid,
        "pgid": proc.pid,
        "sid": proc.pid,
        "start_time": start_time(proc.pid) or 0,
        "argv": list(argv),
        "log": str(log),
        "started_at": time.time(),
    }
    pid_file(run_dir, name).write_text(json.dumps(record, indent=1))
    return record


def pid_file(run_dir: Path, name: str) -> Path:
    """Path of a service's pid file."""
    return run_dir / f"{name}.pid"


def read_record(run_dir: Path, name: str) -> dict[str, Any] | None:
    """The pid record of a service, None if there is none (or it is unreadable)."""
    try:
        return dict(json.loads(pid_file(run_dir, name).read_text()))
    except (OSError, ValueError):
        return None


def stop(record: Mapping[str, Any], sig: int = signal.SIGTERM, timeout: float = 20.0) -> list[int]:
    """Stop a recorded service and everything it started.

    The processes to stop are snapshotted before any signal (a child that left the group
    and the session stays tracked after its parent died). Sends `sig` to the main process
    (and SIGTERM to the others), waits up to `timeout` seconds, then SIGKILLs what is left
    and waits for it to disappear.

    Returns:
        Pids that needed SIGKILL (empty on a clean shutdown).

    Raises:
        RuntimeError: Something survived SIGKILL.
    """
    tracked = _snapshot(record)
    if alive(record):
        _signal(int(record["pid"]), sig)
    if sig != signal.SIGINT:  # postgres: SIGINT to the postmaster only (fast shutdown)
        for pid in _live(tracked):
            _signal(pid, signal.SIGTERM)
    killed = _wait_gone(record, tracked, timeout)
    for pid in killed:
        _signal(pid, signal.SIGKILL)
    left = _wait_gone(record, tracked, 10.0)
    if left:
        raise RuntimeError(f"{record['name']}: processes {left} survived SIGKILL")
    return killed


def _snapshot(record: Mapping[str, Any]) -> dict[int, int]:
    return {pid: start_time(pid) or 0 for pid in members(record)}


def _live(tracked: Mapping[int, int]) -> list[int]:
    out = []
    for pid, started in tracked.items():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z" and int(fields[19]) == started:
            out.append(pid)
    return sorted(out)


def _wait_gone(record: Mapping[str, Any], tracked: dict[int, int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        tracked.update(_snapshot(record))
        left = _live(tracked)
        if not left or time.monotonic() > deadline:
            return left
        _reap(int(record["pid"]))
        time.sleep(0.1)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
