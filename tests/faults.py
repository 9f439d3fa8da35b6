"""Fault tools shared by tests/integration/test_reliability.py and benchmarks/reliability.py.

Real sockets and real processes only: a listener that accepts TCP connections and never
answers (an MLflow or PostgreSQL that is frozen), a port nobody listens on (a dead one),
slow clients that send headers or a body a few bytes at a time, and a gunicorn API started
with `03_deployment/gunicorn.conf.py` exactly like `make serve`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from persona.serving.launch import start_gunicorn, stop_process

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CATALOG = REPO / "01_model" / "personas.yaml"
RECORD = {f"x{i}": 1.0 for i in range(1, 11)}
DEPLOY_CONFIG = "03_deployment/gunicorn.conf.py"  # what `make serve` passes


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_port() -> int:
    """A port where nothing listens: connecting is refused at once."""
    return free_port()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A server that accepts TCP connections and never answers (a frozen process).

    The listening socket's backlog completes the handshakes (as the kernel does for a
    stopped process); accepted connections are kept open and never read.

    Yields:
        Its port.
    """
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()


def write_model_folder(folder: Path) -> Path:
    """Write the catalog model as a local model folder (`MODEL_URI` for the API)."""
    import numpy as np

    from persona.catalog import load_catalog
    from persona.model import MODEL_JSON, from_catalog, model_to_dict

    folder.mkdir(parents=True, exist_ok=True)
    model = from_catalog(load_catalog(CATALOG), np.full(3, 10.0))
    (folder / MODEL_JSON).write_text(json.dumps(model_to_dict(model)), encoding="utf-8")
    return folder


@dataclass
class Api:
    """A gunicorn API started like `make serve` (gunicorn alone on API_HOST:API_PORT)."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    started: float

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """GET a path; (status, JSON body) whatever the status."""
        return http("GET", self.url + path, timeout=timeout)

    def stop(self) -> None:
        """Stop the master and everything it started (its process group)."""
        stop_process(self.proc)


def start_api(tmp: Path, env_values: dict[str, str]) -> Api:
    """Start `gunicorn -c 03_deployment/gunicorn.conf.py` in `tmp` with these settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "API_WORKERS": "2",
            "API_TOKEN": "",
            "VAR_DIR": str(tmp / "var"),
            "MODEL_CACHE_DIR": str(tmp / "var" / "model-cache"),
            "PERSONA_CATALOG": str(CATALOG),
            "DATABASE_URL": f"sqlite:///{tmp}/var/persona.db",
        }
    )
    env.update(env_values)
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / f"gunicorn-{port}.log"
    server = start_gunicorn(
        f"http://127.0.0.1:{port}", env=env, cwd=tmp, log=log, config=REPO / DEPLOY_CONFIG
    )
    return Api(server.url, port, server.proc, log, server.started)


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, Any]]:
    """One request with urllib (sends its whole body before reading): (status, JSON)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw[:300].decode(errors="replace"), "not_json": True}


def wait_for(api: Api, path: str, budget_s: float, want: int | None = None) -> tuple[float, int]:
    """Poll `path` until it answers (with status `want` if given); (seconds, status)."""
    deadline = time.monotonic() + budget_s
    status = 0
    while time.monotonic() < deadline:
        if api.proc.poll() is not None:
            raise AssertionError(f"gunicorn exited: {api.log.read_text()[-3000:]}")
        try:
            status, _ = api.get(path, timeout=2)
            if want is None or status == want:
                return time.monotonic() - api.started, status
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} gave no {want or 'answer'} in {budget_s} s (last {status})")


def open_slow_clients(port: int, count: int, kind: str) -> list[socket.socket]:
    """Open `count` connections that stall: ``header`` (half a request line and headers)
    or ``body`` (full headers announcing 1,000 bytes, then 10 of them)."""
    conns = []
    for _ in range(count):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        if kind == "header":
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        else:
            conn.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n[{"x1": 1,'
            )
        conns.append(conn)
    return conns


def good_latencies(
    url: str, requests_: int, concurrency: int, timeout: float = 10.0
) -> dict[str, Any]:
    """Send one-record requests from `concurrency` threads; latency percentiles and errors."""
    body = json.dumps([RECORD]).encode()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    per_thread = max(1, requests_ // concurrency)

    def run() -> None:
        for _ in range(per_thread):
            started = time.perf_counter()
            try:
                status, _ = http(
                    "POST", url + "/predict", body, {"Content-Type": "application/json"}, timeout
                )
                ok = status == 200
            except OSError as exc:
                ok, status = False, str(exc)  # type: ignore[assignment]
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if not ok:
                    errors.append(str(status))

    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def run_cli(
    args: list[str], env_values: dict[str, str], cwd: Path, timeout: float = 120
) -> tuple[int, str, str, float]:
    """Run `persona ARGS`; (exit code, stdout, stderr, seconds)."""
    env = {**os.environ, **env_values}
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "persona"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started
