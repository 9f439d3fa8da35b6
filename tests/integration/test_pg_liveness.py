"""A PostgreSQL that freezes in the middle of a statement: the client gives up, bounded.

The real server sits behind a TCP proxy that can stop forwarding at any moment (what a
stopped server process or a silent network path looks like to the client: the TCP
connection stays open, nothing comes back). `store.liveness` must end the waiting
statement with a clear `StoreError` soon after `PG_LIVENESS_INTERVAL_S`, and must leave a
slow statement on a live server alone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from persona.errors import StoreError
from persona.store import liveness
from persona.store.engine import make_engine

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]


class FreezableProxy:
    """Forwards TCP both ways to a server until `freeze`; then holds every byte forever."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.frozen = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # accepted by the kernel, never answered: a frozen server
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
            self.sockets.append(server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self.closed:
                time.sleep(0.05)  # hold the bytes: nothing reaches the other side
            if self.closed:
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        """Stop forwarding; connections stay open."""
        self.frozen.set()

    def close(self) -> None:
        """Close everything."""
        self.closed = True
        for sock in [self.listener, *self.sockets]:
            with suppress(OSError):
                sock.close()


@contextmanager
def proxied(pg_url: str) -> Iterator[tuple[FreezableProxy, str]]:
    """A proxy in front of the test database and the URL that goes through it."""
    url = make_url(pg_url)
    proxy = FreezableProxy(url.host or "127.0.0.1", int(url.port or 5432))
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    finally:
        proxy.close()


def test_probe_tells_a_live_server_from_a_silent_one(pg_url: str) -> None:
    with proxied(pg_url) as (proxy, url):
        address = liveness.server_address(make_url(url))
        assert liveness.probe(address, 5.0) is None
        proxy.freeze()
        started = time.monotonic()
        reason = liveness.probe(address, 1.0)
        assert reason == "no answer within 1 s"
        assert time.monotonic() - started < 3.0


def test_frozen_mid_statement_ends_with_a_clear_error(pg_url: str) -> None:
    with proxied(pg_url) as (proxy, url):
        engine = make_engine(
            url, connect_timeout_s=2, statement_timeout_s=0, liveness_interval_s=1.0
        )
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
        threading.Timer(0.5, proxy.freeze).start()
        started = time.monotonic()
        with pytest.raises(StoreError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(2)")).scalar()
        waited = time.monotonic() - started
        engine.dispose()
    message = str(caught.value)
    assert "stopped answering" in message and "PG_LIVENESS_INTERVAL_S" in message
    # interval 1 s + probe budget 2 s + ticks; a 4x slower machine stays far below 60 s.
    assert waited < 60.0


def test_a_slow_statement_on_a_live_server_is_left_alone(pg_url: str) -> None:
    with proxied(pg_url) as (_proxy, url):
        # A probe may take up to 10 s to be answered (a machine loaded 4x stays inside it).
        engine = make_engine(
            url, connect_timeout_s=10, statement_timeout_s=0, liveness_interval_s=0.5
        )
        with engine.connect() as conn:
            # Busy for 3 s: several probes go out, every one is answered.
            assert conn.execute(text("SELECT pg_sleep(3), 7")).one()[1] == 7
        engine.dispose()


def test_a_fresh_process_gets_one_clear_error_when_postgres_freezes(
    pg_url: str, tmp_path: Path
) -> None:
    with proxied(pg_url) as (proxy, url):
        # The CLI connects through the proxy, then the server freezes before it reads.
        script = (
            "import sys, time\n"
            "from persona.store.engine import open_store\n"
            "from persona.settings import load_settings\n"
            f"s = load_settings(_env_file=None, database_url={url!r}, pg_connect_timeout_s=2,"
            " pg_liveness_interval_s=1.0)\n"
            "engine = open_store(s.database_url, s)\n"
            "print('ready', flush=True)\n"
            "sys.stdin.readline()\n"
            "from persona.store import survey_queries\n"
            "from persona.errors import PersonaError\n"
            "try:\n"
            "    survey_queries.list_months(engine)\n"
            "except PersonaError as exc:\n"
            "    print(type(exc).__name__, exc, file=sys.stderr)\n"
            "    sys.exit(2)\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        proxy.freeze()
        started = time.monotonic()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _out, err = proc.communicate(timeout=120)
        waited = time.monotonic() - started
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    # The pool's ping (watched) or the query itself is ended by the watchdog; either way
    # one StoreError line (what the CLI prints, exit 2) that says PostgreSQL stopped
    # answering, and no log noise.
    assert len(lines) == 1 and lines[0].startswith("StoreError"), err
    assert "stopped answering" in lines[0], err
    assert "Traceback" not in err
    assert waited < 60.0
