"""One real webhook receiver for the tests: records each post, answers a list of statuses."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Post:
    """One request the receiver got.

    Attributes:
        at: `time.monotonic()` when it arrived.
        path: The request path (with its query).
        status: The status answered.
        json: The body parsed as JSON (None when it is not JSON).
        content_type: Its Content-Type header.
    """

    at: float
    path: str
    status: int
    json: Any
    content_type: str | None


class Webhook(ThreadingHTTPServer):
    """A receiver on 127.0.0.1, port 0, served on a thread while used as a context manager.

    Args:
        statuses: The statuses answered to the posts in turn; the last one repeats.
        delay_s: Seconds each answer waits (a slow receiver).
    """

    daemon_threads = True

    def __init__(self, statuses: Iterable[int] = (200,), delay_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._statuses: list[int] = []
        self.answer(*statuses)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        """The hook's URL (``/hook``)."""
        return f"{self.base}/hook"

    @property
    def statuses(self) -> list[int]:
        """The statuses answered, post by post."""
        return [p.status for p in self.posts]

    def answer(self, *statuses: int) -> None:
        """Answer these statuses to the next posts (the last one repeats)."""
        if not statuses:
            raise ValueError("give at least one status")
        with self._lock:
            self._statuses = list(statuses)

    def _next(self) -> int:
        with self._lock:
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]

    def __enter__(self) -> Webhook:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        status = self.server._next()
        post = Post(time.monotonic(), self.path, status, parsed, self.headers["Content-Type"])
        self.server.posts.append(post)
        if self.server.delay_s:
            time.sleep(self.server.delay_s)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass
