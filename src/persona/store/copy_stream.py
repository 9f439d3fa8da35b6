"""Streamed binary COPY on PostgreSQL (psycopg2): read in chunks while another COPY writes.

`copy_out_chunks` runs a ``COPY (SELECT ...) TO STDOUT`` whose tuples all have one fixed
layout and hands each chunk of rows to a callback as it arrives, in the caller's thread.
`CopySender` runs a ``COPY ... FROM STDIN`` on a background thread fed piece by piece: the
thread only waits on the server (psycopg2 sends without holding the GIL), so the caller's
thread reads and encodes the next rows while PostgreSQL inserts the previous ones, and the
reading and the inserting backends run at the same time. The COPY IN stays in the caller's
transaction on the caller's connection; nothing else uses that connection until it ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

from persona.errors import StoreError
from persona.store.copy_codec import HEADER, SIGNATURE, TRAILER, check_tuples, copy_in

_HEAD = len(HEADER)  # signature, flags, header-extension length (PostgreSQL sends none)
_END, _ABORT = object(), object()


class _Chunks:
    """A COPY OUT sink (psycopg2 calls `write` per message) cutting the tuples into chunks."""

    def __init__(self, dtype: np.dtype, rows: int, handle: Callable[[np.ndarray], None]):
        self._dtype, self._handle = dtype, handle
        self._size = dtype.itemsize * rows
        self._buffer = bytearray()
        self._started = False
        self.rows = 0
        self.error: BaseException | None = None  # raised by `handle`, not by the COPY

    def write(self, data: bytes) -> None:
        self._buffer += data
        if not self._started and len(self._buffer) >= _HEAD:
            if bytes(self._buffer[:11]) != SIGNATURE or self._buffer[11:_HEAD] != bytes(8):
                raise StoreError("unexpected COPY output from PostgreSQL (no binary header)")
            del self._buffer[:_HEAD]
            self._started = True
        if self._started and len(self._buffer) >= self._size:
            self._emit(self._size)

    def _emit(self, size: int) -> None:
        records = np.frombuffer(bytes(self._buffer[:size]), dtype=self._dtype)
        del self._buffer[:size]
        check_tuples(records, self._dtype)
        self.rows += len(records)
        try:
            self._handle(records)
        except BaseException as exc:  # the caller's failure: kept whole, not a COPY error
            self.error = exc
            raise

    def close(self) -> None:
        """Hand over the last rows; the payload must end with the trailer."""
        body = len(self._buffer) - len(TRAILER)
        if not self._started or body % self._dtype.itemsize or self._buffer[body:] != TRAILER:
            raise StoreError(f"unexpected COPY output: {len(self._buffer)} bytes at the end")
        if body:
            self._emit(body)


def copy_out_chunks(
    dbapi_connection: Any,
    statement: str,
    dtype: np.dtype,
    rows: int,
    handle: Callable[[np.ndarray], None],
) -> int:
    """Run a binary ``COPY ... TO STDOUT``, calling `handle` with each `rows` tuples.

    Args:
        dbapi_connection: A psycopg2 connection of its own (its transaction is left open).
        statement: The full COPY statement (``WITH (FORMAT binary)``).
        dtype: The layout of every tuple (`copy_codec.tuple_dtype`, field count included).
        rows: Tuples per chunk (the last chunk may be shorter).
        handle: Called in this thread with the records of each chunk, in server order.

    Returns:
        The tuples read.

    Raises:
        StoreError: The output is not tuples of `dtype`.
        sqlalchemy.exc.DBAPIError: The server's error. An exception raised by `handle`
            propagates as it is; the connection is then in the middle of the COPY and must
            be discarded.
    """
    import psycopg2

    sink = _Chunks(dtype, rows, handle)
    cursor = dbapi_connection.cursor()
    try:
        cursor.copy_expert(statement, sink, size=1 << 20)
    except BaseException as exc:
        if sink.error is not None:
            raise sink.error from None
        if isinstance(exc, psycopg2.Error):  # as SQLAlchemy would raise it
            raise DBAPIError.instance(statement, None, exc, psycopg2.Error) from exc
        raise
    finally:
        cursor.close()
    sink.close()
    return sink.rows


class CopySender:
    """A binary ``COPY table (names) FROM STDIN`` on a background thread, fed with `send`.

    Use as a context manager on a connection inside the caller's transaction; send the
    tuples (no header or trailer: the sender adds them). Leaving the block normally ends
    the COPY and raises the server's error if it failed; leaving it with an exception ends
    the COPY with an error (the transaction must then be rolled back). A server error
    during the COPY also surfaces from the next `send`.

    Args:
        conn: The connection; the caller does not use it until the block ends.
        table: The target table.
        names: Its columns, in the tuples' field order.
        size: Bytes psycopg2 sends per call.
        depth: Pieces queued before `send` waits for the server.
    """

    def __init__(
        self, conn: Connection, table: Table, names: Sequence[str], size: int, depth: int = 4
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(conn, table, names, size), name="copy-sender", daemon=True
        )

    def _run(self, conn: Connection, table: Table, names: Sequence[str], size: int) -> None:
        try:
            copy_in(conn, table, names, self._pieces(), size)
        except BaseException as exc:
            self._error = exc

    def _pieces(self) -> Iterator[bytes]:
        yield HEADER
        while (piece := self._queue.get()) is not _END:
            if piece is _ABORT:
                raise StoreError("COPY abandoned by the caller")  # psycopg2 sends CopyFail
            yield piece  # type: ignore[misc]
        yield TRAILER

    def _put(self, item: object) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise StoreError("the COPY thread ended before its input did")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def send(self, piece: bytes) -> None:
        """Queue tuples for the server; waits while `depth` pieces are still unsent."""
        if piece:
            self._put(piece)

    def __enter__(self) -> CopySender:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._put(_ABORT if kind is not None else _END)
        except BaseException:
            if kind is None:
                raise
        finally:
            self._thread.join()
        if kind is None and self._error is not None:
            raise self._error
