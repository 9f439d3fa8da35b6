"""nginx in front of the gunicorn workers (`API_FRONT=nginx`, the default).

Gunicorn's sync workers serve one connection at a time, so a client that sends its headers
or body slowly holds a whole worker: two such clients took the API down. nginx reads each
request completely (headers, then the body, each within `API_CLIENT_TIMEOUT_S`, else 408)
before it hands it to a worker over a unix socket, so slow clients cost nginx a few
kilobytes each and never a worker. Its own refusals (400, 408, 413, 414, 431, 502, 503,
504) are JSON documents shaped like the app's. The gunicorn master starts nginx (`start`)
once its socket is bound and stops it on exit (`stop`); nginx also dies with the master
(`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from persona.errors import SettingsError
from persona.settings import ServingSettings

DIR_ENV = "PERSONA_FRONT_DIR"
_SOCKET = "gunicorn.sock"
_ERRORS = {
    400: "bad request: malformed HTTP (request line, headers or chunked body)",
    408: "request not received in time (API_CLIENT_TIMEOUT_S)",
    413: "request body too large: more than {max_body} bytes (API_MAX_BODY_BYTES)",
    414: "request URI too long",
    431: "request headers too large",
    494: "request headers too large",
    502: "no API worker is answering; see the server log",
    503: "the API is overloaded or restarting; retry later",
    504: "an API worker took too long to answer; see the server log",
}


def nginx_binary() -> str:
    """Path of the nginx executable.

    Raises:
        SettingsError: nginx is not installed (the message says how to install it).
    """
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise SettingsError(
            "API_FRONT=nginx but nginx is not installed: run `make nginx` "
            "(apt-get install nginx-light) or set API_FRONT=none (slow clients then hold workers)"
        )
    return found


def socket_path(folder: str | Path) -> Path:
    """The unix socket gunicorn binds behind nginx."""
    return Path(folder) / _SOCKET


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_conf(settings: ServingSettings, folder: str | Path, worker_timeout_s: int) -> str:
    """The nginx configuration of the API front (a pure function of the settings).

    Args:
        settings: API host/port, body limit, client timeout.
        folder: Runtime folder (pid, temp files, the gunicorn socket).
        worker_timeout_s: Gunicorn's worker timeout (nginx waits a little longer).

    Returns:
        The text of nginx.conf.
    """
    root = Path(folder)
    timeout = f"{max(1, round(settings.api_client_timeout_s))}s"
    user = "user root root;\n" if os.geteuid() == 0 else ""
    pages, locations = [], []
    for code, text in _ERRORS.items():
        body = json.dumps(
            {"error": text.format(max_body=settings.api_max_body_bytes), "issues": []}
        )
        pages.append(f"        error_page {code} @error{code};")
        escaped = body.replace("\\", "\\\\").replace("'", "\\'")
        locations.append(
            f"        location @error{code} {{\n"
            f"            default_type application/json;\n"
            f"            return {code} '{escaped}';\n"
            f"        }}"
        )
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# Written by persona.serving.front at start; edits are lost.
{user}worker_processes 1;
daemon off;
pid {root / "nginx.pid"};
error_log stderr warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    server_tokens off;
{temp}
    client_header_timeout {timeout};
    client_body_timeout {timeout};
    send_timeout {timeout};
    keepalive_timeout 5s;
    keepalive_requests 10000;
    client_max_body_size {settings.api_max_body_bytes};
    client_body_buffer_size 1m;
    large_client_header_buffers 4 16k;
    upstream persona_api {{
        server unix:{socket_path(root)} max_fails=0;
    }}
    server {{
        listen {_listen(settings.api_host, settings.api_port)} backlog=2048;
{chr(10).join(pages)}
        location / {{
            proxy_pass http://persona_api;
            proxy_request_buffering on;
            proxy_buffering on;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_send_timeout {worker_timeout_s + 5}s;
            proxy_read_timeout {worker_timeout_s + 5}s;
        }}
{chr(10).join(locations)}
    }}
}}
"""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(
    settings: ServingSettings, folder: str | Path, worker_timeout_s: int, wait_s: float = 10.0
) -> subprocess.Popen[bytes]:
    """Write nginx.conf into `folder`, start nginx and wait until it listens.

    Args:
        settings: The API settings.
        folder: Runtime folder (created by the caller).
        worker_timeout_s: Gunicorn's worker timeout.
        wait_s: Longest wait for nginx to listen.

    Returns:
        The nginx master process.

    Raises:
        SettingsError: nginx is missing, exits, or does not listen within `wait_s`.
    """
    root = Path(folder)
    conf = root / "nginx.conf"
    conf.write_text(nginx_conf(settings, root, worker_timeout_s), encoding="utf-8")
    # nginx logs (warnings and errors only) to the master's stderr: the same log as gunicorn.
    proc = subprocess.Popen(
        [nginx_binary(), "-p", str(root), "-c", str(conf), "-e", "stderr"],
        preexec_fn=_die_with_parent,  # only prctl, before exec
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SettingsError(
                f"nginx exited ({proc.returncode}) at start on {settings.api_host}:"
                f"{settings.api_port}; its error is in the log just above"
            )
        if _listening(settings.api_host, settings.api_port):
            return proc
        time.sleep(0.05)
    stop(proc)
    raise SettingsError(
        f"nginx not listening on {settings.api_host}:{settings.api_port} after {wait_s} s"
    )


def _listening(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop(proc: subprocess.Popen[bytes], wait_s: float = 5.0) -> None:
    """Stop nginx (fast shutdown: SIGTERM, then SIGKILL)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=wait_s)
