"""Gunicorn configuration helpers used by `persona.serving.gunicorn_config`.

Its hooks (`child_exit`, `on_exit`, `worker_exit`) make it a gunicorn config of its own:
`persona governance serve` passes ``-c python:persona.serving.gunicorn_conf``.

Decisions (see docs/serving.md):
- `preload_app = False`: every worker imports the app and loads the model itself, and the
  reload thread starts in each worker on its first request (threads do not survive fork).
  One worker at a time (an exclusive lock on a file of the metrics folder) also governs
  champion moves made outside the platform, so N workers do not check one move N times.
- Prometheus multiprocess mode: the master creates a fresh temp folder and exports
  `PROMETHEUS_MULTIPROC_DIR` before any worker imports prometheus_client; `child_exit`
  marks dead workers; `on_exit` removes the folder if the master created it.
- One BLAS thread per worker: the matrices are tiny and the workers already use the cores.
- Gunicorn binds API_HOST:API_PORT itself. Nothing else runs beside it: the embedded
  default needs only Python. The production stack puts nginx in front as its own
  service (docker-compose.yml), so slow clients never hold a sync worker there.
- sync workers by default: on a quiet 2-core machine they served ~6,100 one-record req/s
  at p99 8 ms and ~825k rows/s in 1,000-record requests; gthread (keep-alive) reached
  ~7,900 req/s but at p99 17 ms, over the 15 ms latency target (benchmarks/serving.py).
  `GUNICORN_WORKER_CLASS=gthread` trades tail latency for throughput.
- No control socket (gunicorn >= 25.1), no access log unless `GUNICORN_ACCESS_LOG` is set.
- A worker that has finished (SIGTERM: its request done) ends with `os._exit`
  (`worker_exit`): tearing down the interpreter of a process that imported MLflow took 2-3 s
  of CPU per worker, so `docker compose stop` waited on it. `graceful_timeout` (5 s) stays
  under Docker's 10 s stop grace: a request still running then is cut by gunicorn, never
  the whole container by Docker's SIGKILL.
- Every `GUNICORN_*` value is a field of `ServingSettings` (validated with the others).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persona.settings import ServingSettings

_OWNED_ENV = "PERSONA_PROMETHEUS_DIR_OWNED"
WORKER_TIMEOUT_S = 30
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
WSGI_APP = "persona.serving.wsgi:app"


def prepare_environment() -> str:
    """Export the Prometheus multiprocess folder and single-threaded BLAS (idempotent).

    Returns:
        The multiprocess metrics folder.
    """
    for name in _BLAS_ENV:
        os.environ.setdefault(name, "1")
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        folder = tempfile.mkdtemp(prefix="persona-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ[_OWNED_ENV] = folder
    Path(folder).mkdir(parents=True, exist_ok=True)
    return folder


def install_json_errors() -> None:
    """Make gunicorn's own error answers JSON, like the app's (idempotent).

    Requests gunicorn's parser refuses before the app sees them (a bad request line, a
    Content-Length that is not a number, over-long headers) are answered by
    `gunicorn.util.write_error` with an HTML page; it is replaced, in the master before the
    workers fork, by one that writes ``{"error": ..., "issues": []}``.
    """
    from gunicorn import util

    if getattr(util.write_error, "persona_json", False):
        return

    def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        text = f"{reason}: {mesg}" if mesg else reason
        body = json.dumps({"error": text, "issues": []}).encode()
        head = (
            f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        util.write_nonblock(sock, head.encode("latin-1") + body)

    write_json_error.persona_json = True  # type: ignore[attr-defined]
    util.write_error = write_json_error


@dataclass(frozen=True)
class GunicornOptions:
    """The gunicorn config variables of the API (names as in a gunicorn config file).

    `threads` and `worker_tmp_dir` are None when gunicorn's default applies (sync workers;
    no /dev/shm); `accesslog` None means no access log.
    """

    bind: tuple[str, ...]
    workers: int
    worker_class: str
    accesslog: str | None
    loglevel: str
    threads: int | None = None
    worker_tmp_dir: str | None = None
    wsgi_app: str = WSGI_APP
    preload_app: bool = False
    control_socket_disable: bool = True
    errorlog: str = "-"
    timeout: int = WORKER_TIMEOUT_S
    graceful_timeout: int = 5
    keepalive: int = 5
    backlog: int = 2048
    proc_name: str = "persona-api"

    def to_dict(self) -> dict[str, Any]:
        """The variables for a gunicorn config module (defaults left out, `bind` a list)."""
        values = asdict(self)
        values["bind"] = list(self.bind)
        for name in ("threads", "worker_tmp_dir"):
            if values[name] is None:
                del values[name]
        return values


def options(serving: ServingSettings) -> GunicornOptions:
    """Gunicorn settings derived from the platform settings.

    Args:
        serving: API host, port, workers and the `GUNICORN_*` values.

    Returns:
        The gunicorn config variables (`GunicornOptions.to_dict` for a config module).
    """
    worker_class = serving.gunicorn_worker_class
    host = f"[{serving.api_host}]" if ":" in serving.api_host else serving.api_host
    return GunicornOptions(
        bind=(f"{host}:{serving.api_port}",),
        workers=serving.api_workers,
        worker_class=worker_class,
        accesslog=serving.gunicorn_access_log or None,
        loglevel=serving.gunicorn_log_level,
        threads=serving.gunicorn_threads if worker_class == "gthread" else None,
        worker_tmp_dir="/dev/shm" if Path("/dev/shm").is_dir() else None,
    )


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook: drop a dead worker's live gauges from the merged metrics (if any).

    Without a multiprocess metrics folder (the governance receiver) there is nothing to drop.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, folder)


def on_exit(server: Any) -> None:
    """Gunicorn hook: remove the metrics folder if this master created it."""
    folder = os.environ.get(_OWNED_ENV)
    if folder and folder == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(folder, ignore_errors=True)


def worker_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook, a worker's last step: a worker that exits normally ends at once.

    Gunicorn calls it while the worker's `SystemExit` propagates. Its code is kept; the
    interpreter's teardown (2-3 s of CPU after importing MLflow and scikit-learn, nothing
    to flush: logs are written per record, metrics live in shared files) is skipped with
    `os._exit`. Any other exception takes gunicorn's usual path.
    """
    exc = sys.exc_info()[1]
    if not isinstance(exc, SystemExit) or not isinstance(exc.code, int | None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exc.code or 0)
