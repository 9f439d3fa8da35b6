"""Which worker of a gunicorn server runs the champion governance (one at a time).

Every worker's reload thread would otherwise run `registry.governance.sync_champion` after
each swap, so with N workers one external move of ``champion`` was checked N times. The
gunicorn master names a lock file (`SYNC_LOCK_ENV`, set by
`gunicorn_conf.prepare_environment`); the first worker to take an exclusive `flock` on it
governs for its lifetime. Imports nothing heavy: the gunicorn config imports this module
before numpy or prometheus_client are loaded.
"""

from __future__ import annotations

import fcntl
import logging
import os

log = logging.getLogger(__name__)

# The file whose exclusive lock elects the one governing worker of a gunicorn server
# (set by `gunicorn_conf.prepare_environment` in the master; unset: this process governs).
SYNC_LOCK_ENV = "PERSONA_SYNC_LOCK"
_elected: dict[str, tuple[int, int]] = {}  # lock path -> (pid, fd) of this process


def governs() -> bool:
    """Whether this process runs the champion governance of its server.

    Every worker's reload thread asks before each sync; the first to take an exclusive
    `flock` on the file in `PERSONA_SYNC_LOCK` keeps it for its lifetime, so exactly one
    live worker governs. When it dies the kernel drops the lock and the next worker to
    swap (or a new worker's first check) takes over. Without the variable (tests,
    `flask run`: one process) it always answers True.

    Returns:
        True when this process holds (or just took) the lock.
    """
    path = os.environ.get(SYNC_LOCK_ENV)
    if not path:
        return True
    pid = os.getpid()
    held = _elected.get(path)
    if held is not None and held[0] == pid:
        return True
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        log.warning("cannot open the governance lock %s (%s): this worker governs", path, exc)
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another worker governs
        os.close(fd)
        return False
    _elected[path] = (pid, fd)
    log.warning("pid %s runs the champion governance (sync_champion) of this server", pid)
    return True
