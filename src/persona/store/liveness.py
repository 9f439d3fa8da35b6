"""Client-side bound on a PostgreSQL server that stops answering while a connection is in use.

The server-side ``statement_timeout`` cannot fire in a server that is frozen (its processes
stopped, its host suspended, a network path that silently drops packets), and TCP
keepalives succeed as long as the peer's kernel answers. So, while a connection has been
checked out of the pool for longer than `PG_LIVENESS_INTERVAL_S`, a watchdog thread asks
the server a question that needs no login: the 8-byte ``SSLRequest`` of the wire protocol,
which the postmaster answers with one byte (``S`` or ``N``) at once. No answer within
`PG_CONNECT_TIMEOUT_S` means the server stopped answering: the watchdog shuts the busy
connections' sockets down, the waiting call fails at once, and the store raises a
`StoreError` that names the server and how long it was silent. A server that is only slow
(a long COPY, a lock wait) keeps answering the probe and is left alone.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import URL

from persona.errors import StoreError

log = logging.getLogger(__name__)

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
DEFAULT_SOCKET_DIR = "/var/run/postgresql"


@dataclass(frozen=True)
class ServerAddress:
    """Where the probe knocks: a TCP host and port, or a Unix socket path.

    Attributes:
        family: `socket.AF_INET`/`AF_INET6` (resolved at probe time) or `socket.AF_UNIX`.
        target: ``(host, port)`` or the socket file path.
        label: How messages name the server.
    """

    family: int
    target: Any
    label: str


def server_address(url: URL) -> ServerAddress:
    """The address of the PostgreSQL server a SQLAlchemy URL points to.

    Args:
        url: A ``postgresql+psycopg2://`` URL (``?host=/dir`` selects a Unix socket).

    Returns:
        The probe address.
    """
    port = int(url.port or 5432)
    host = url.host or str(url.query.get("host") or "") or DEFAULT_SOCKET_DIR
    if host.startswith("/"):
        path = os.path.join(host, f".s.PGSQL.{port}")
        return ServerAddress(socket.AF_UNIX, path, path)
    return ServerAddress(socket.AF_INET, (host, port), f"{host}:{port}")


def probe(address: ServerAddress, timeout_s: float) -> str | None:
    """Ask the server for its SSL answer; None when it answered within `timeout_s`.

    Args:
        address: The server.
        timeout_s: Seconds for connecting and for the one-byte answer together.

    Returns:
        None if the server answered, else why it did not.
    """
    deadline = time.monotonic() + timeout_s
    try:
        if address.family == socket.AF_UNIX:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout_s)
            sock.connect(address.target)
        else:
            sock = socket.create_connection(address.target, timeout=timeout_s)
        with sock:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            sock.sendall(SSL_REQUEST)
            answer = sock.recv(1)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot reach it ({exc.strerror or exc})"
    if answer not in (b"S", b"N"):
        return f"unexpected answer {answer!r}" if answer else "it closed the connection"
    return None


def _shutdown(dbapi_connection: Any) -> None:
    """Shut the connection's socket down so the call waiting on it fails at once."""
    try:
        duplicate = os.dup(dbapi_connection.fileno())
    except (OSError, AttributeError, ValueError) as exc:
        log.warning("cannot reach the socket of a PostgreSQL connection: %s", exc)
        return
    try:
        with socket.socket(fileno=duplicate) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError as exc:
        log.warning("cannot shut a PostgreSQL connection down: %s", exc)


@dataclass
class Watchdog:
    """Probes the server while connections are checked out; ends them when it is silent.

    Attributes:
        address: The server.
        interval_s: A connection busy this long gets the server probed (then every
            interval while it stays busy).
        probe_timeout_s: Seconds the server has to answer a probe.
    """

    address: ServerAddress
    interval_s: float
    probe_timeout_s: float
    _busy: dict[int, tuple[Any, float]] = field(default_factory=dict)
    _killed: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _last_kill: tuple[float, str] | None = None

    def checked_out(self, dbapi_connection: Any) -> None:
        """A connection went into use (pool checkout)."""
        with self._lock:
            self._busy[id(dbapi_connection)] = (dbapi_connection, time.monotonic())
            self._killed.pop(id(dbapi_connection), None)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pg-liveness", daemon=True)
                self._thread.start()

    def checked_in(self, dbapi_connection: Any) -> None:
        """A connection went back to the pool (or was closed)."""
        with self._lock:
            self._busy.pop(id(dbapi_connection), None)

    def killed_reason(self, dbapi_connection: Any) -> str | None:
        """Why the watchdog ended this connection, if it did."""
        with self._lock:
            return self._killed.get(id(dbapi_connection))

    def recent_kill(self) -> str | None:
        """The watchdog's last message, if it ended a connection in the last few intervals.

        A reconnect that fails right after (connect timeout) is the same fault; its error
        is reported with this message.
        """
        with self._lock:
            if self._last_kill is None:
                return None
            at, message = self._last_kill
        window = 3 * self.interval_s + 2 * self.probe_timeout_s
        return message if time.monotonic() - at <= window else None

    def _overdue(self) -> list[tuple[int, Any, float]]:
        now = time.monotonic()
        with self._lock:
            return [
                (key, conn, now - since)
                for key, (conn, since) in self._busy.items()
                if now - since >= self.interval_s
            ]

    def _run(self) -> None:
        tick = max(0.05, self.interval_s / 2)
        while True:
            time.sleep(tick)
            with self._lock:
                if not self._busy:
                    self._thread = None
                    return
            overdue = self._overdue()
            if not overdue:
                continue
            reason = probe(self.address, self.probe_timeout_s)
            if reason is None:
                continue
            for key, conn, busy_s in overdue:
                message = (
                    f"PostgreSQL at {self.address.label} stopped answering: a connection was "
                    f"busy for {busy_s:.0f} s and a liveness probe got {reason} "
                    f"(PG_LIVENESS_INTERVAL_S={self.interval_s:g}, "
                    f"PG_CONNECT_TIMEOUT_S={self.probe_timeout_s:g})"
                )
                log.info("%s; ending the connection", message)
                with self._lock:
                    if key not in self._busy:
                        continue
                    self._killed[key] = message
                    self._last_kill = (time.monotonic(), message)
                _shutdown(conn)
            time.sleep(tick)


def install(engine: Engine, interval_s: float, probe_timeout_s: float) -> Watchdog | None:
    """Watch a PostgreSQL engine's connections (no-op for other engines or interval 0).

    Args:
        engine: The store engine.
        interval_s: `PG_LIVENESS_INTERVAL_S`; 0 turns the watchdog off.
        probe_timeout_s: Seconds the server has to answer a probe.

    Returns:
        The watchdog, or None when none was installed.
    """
    if engine.dialect.name != "postgresql" or interval_s <= 0:
        return None
    dog = Watchdog(server_address(engine.url), interval_s, probe_timeout_s)
    _track_connections(engine, dog)
    _explain_errors(engine, dog)
    return dog


def _track_connections(engine: Engine, dog: Watchdog) -> None:
    """Tell the watchdog when a connection goes into use and when it comes back."""

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dog.checked_out(dbapi_connection)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            dog.checked_in(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _invalidate(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        if dbapi_connection is not None:
            dog.checked_in(dbapi_connection)

    @event.listens_for(engine, "close")
    def _close(dbapi_connection: Any, _record: Any) -> None:
        dog.checked_in(dbapi_connection)

    # The pool's pre-ping runs before the checkout event: watch it too.
    original_ping = engine.dialect.do_ping

    def watched_ping(dbapi_connection: Any) -> bool:
        dog.checked_out(dbapi_connection)
        return bool(original_ping(dbapi_connection))

    setattr(engine.dialect, "do_ping", watched_ping)  # noqa: B010 - per-engine dialect


def _explain_errors(engine: Engine, dog: Watchdog) -> None:
    """Turn the error of a call the watchdog ended into a `StoreError` that says why."""

    @event.listens_for(engine, "handle_error")
    def _handle_error(context: Any) -> None:
        connection = getattr(context, "connection", None)
        dbapi = getattr(connection, "connection", None) if connection is not None else None
        raw = getattr(dbapi, "dbapi_connection", None)
        reason = dog.killed_reason(raw) if raw is not None else None
        if reason is None and raw is None:
            # Opening a new connection failed (the pool replaces the one the watchdog
            # ended): if that happened just after a kill, it is the same silent server.
            recent = dog.recent_kill()
            if recent is not None:
                cause = " ".join(str(context.original_exception).split())
                reason = f"{recent}; reconnecting failed too: {cause}"
        if reason is not None:
            raise StoreError(reason.strip()) from context.original_exception
