"""Gunicorn configuration helpers used by `persona.serving.gunicorn_config`.

Decisions (see docs/serving.md):
- `preload_app = False`: every worker imports the app and loads the model itself, and the
  reload thread starts in each worker on its first request (threads do not survive fork).
- Prometheus multiprocess mode: the master creates a fresh temp folder and exports
  `PROMETHEUS_MULTIPROC_DIR` before any worker imports prometheus_client; `child_exit`
  marks dead workers; `on_exit` removes the folder if the master created it.
- One BLAS thread per worker: the matrices are tiny and the workers already use the cores.
- nginx in front by default (`API_FRONT=nginx`, `persona.serving.front`): the workers bind
  a unix socket in a private folder and nginx, started by the master in `when_ready`,
  listens on API_HOST:API_PORT and hands over only complete requests, so slow clients
  never hold a sync worker (docs/reliability.md). `API_FRONT=none` binds gunicorn itself.
- sync workers by default: on a quiet 2-core machine they served ~6,100 one-record req/s
  at p99 8 ms and ~825k rows/s in 1,000-record requests; gthread (keep-alive) reached
  ~7,900 req/s but at p99 17 ms, over the 15 ms latency target (benchmarks/serving.py).
  `GUNICORN_WORKER_CLASS=gthread` trades tail latency for throughput.
- No control socket (gunicorn >= 25.1), no access log unless `GUNICORN_ACCESS_LOG` is set.
- Every `GUNICORN_*` value is a field of `ServingSettings` (validated with the others).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from persona.errors import SettingsError
from persona.serving import front
from persona.settings import ServingSettings, get_settings

_OWNED_ENV = "PERSONA_PROMETHEUS_DIR_OWNED"
WORKER_TIMEOUT_S = 30
_nginx: list[Any] = []
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
    workers fork, by one that writes ``{"error": ..., "issues": []}``. Behind nginx
    (the default) nginx refuses most of these itself, with its own JSON pages.
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
    graceful_timeout: int = 10
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
        serving: API host, port, workers, front and the `GUNICORN_*` values.

    Returns:
        The gunicorn config variables (`GunicornOptions.to_dict` for a config module).
    """
    worker_class = serving.gunicorn_worker_class
    bind = f"{serving.api_host}:{serving.api_port}"
    if serving.api_front == "nginx":
        front.nginx_binary()  # fail at start, with the fix, when nginx is missing
        folder = os.environ.get(front.DIR_ENV)
        if not folder or not Path(folder).is_dir():
            folder = tempfile.mkdtemp(prefix="persona-api-")
            os.environ[front.DIR_ENV] = folder
        bind = f"unix:{front.socket_path(folder)}"
    return GunicornOptions(
        bind=(bind,),
        workers=serving.api_workers,
        worker_class=worker_class,
        accesslog=serving.gunicorn_access_log or None,
        loglevel=serving.gunicorn_log_level,
        threads=serving.gunicorn_threads if worker_class == "gthread" else None,
        worker_tmp_dir="/dev/shm" if Path("/dev/shm").is_dir() else None,
    )


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook: drop a dead worker's live gauges from the merged metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def when_ready(server: Any) -> None:
    """Gunicorn hook (master, socket bound): start nginx when it is the front.

    Started after the bind, so nginx never answers 502 for a socket that does not exist
    yet: requests wait in the socket's backlog until a worker takes them.
    """
    folder = os.environ.get(front.DIR_ENV)
    serving = get_settings().serving
    if serving.api_front != "nginx" or not folder:
        return
    try:
        _nginx.append(front.start(serving, folder, WORKER_TIMEOUT_S))
    except SettingsError as exc:
        raise SystemExit(f"persona-api: {exc}") from None
    server.log.info("nginx in front on %s:%s", serving.api_host, serving.api_port)


def on_exit(server: Any) -> None:
    """Gunicorn hook: stop nginx; remove the folders this master created."""
    while _nginx:
        front.stop(_nginx.pop())
    folder = os.environ.get(front.DIR_ENV)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
    folder = os.environ.get(_OWNED_ENV)
    if folder and folder == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(folder, ignore_errors=True)
