"""Bad requests sent over raw sockets to the stack's nginx, and how each answer is judged.

The held-out style of issue 21: malformed request lines, path traversal, NUL, `*`, the
HTTP/2 preface, TRACE and unknown methods, oversize body, URI and headers, slow headers and
slow bodies. Every case must get a JSON 4xx (never a 5xx, never HTML), except the slow
ones (`SLOW`, status 0: no byte at all). nginx cannot answer a client that stalls
mid-request: when `client_header_timeout` or `client_body_timeout` expires it closes the
connection without sending anything (the 408 is only the status it logs; `error_page 408`
is never used: ngx_http_request.c closes the request on a header timeout, and
`ngx_http_finalize_request` terminates any request finalized with 408 instead of sending
a special response). The slow cases are judged on that: closed after the timeout, with
nothing sent.
"""

from __future__ import annotations

import json
import socket
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass

H = b"Host: api\r\n"
TOKEN = b"__API_TOKEN__"  # replaced by the stack's API_TOKEN before sending (`with_token`)
BIG = 9 * 1024 * 1024  # over the 8 MiB body limit


@dataclass(frozen=True)
class Case:
    """One raw request and the 4xx it must get."""

    name: str
    raw: bytes
    status: int


def _get(target: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + H + extra + b"Connection: close\r\n\r\n"


_HEADERS_10K = [b"X-H%d: " % i + b"h" * 10_000 + b"\r\n" for i in range(5)]

CASES: tuple[Case, ...] = (
    # malformed request lines
    Case("garbage line", b"GARBAGE\r\n\r\n", 400),
    Case("binary garbage", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n", 400),
    Case("TLS client hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32, 400),
    Case("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    Case("version 9.9", b"GET / HTTP/9.9\r\n" + H + b"\r\n", 400),
    Case("no version, extra field", b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", 400),
    Case("lowercase method", b"get / HTTP/1.1\r\n" + H + b"\r\n", 400),
    Case("method with @", b"G@T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    Case("asterisk target GET", _get(b"*"), 400),
    Case("space in target", _get(b"/pre dict"), 400),
    # bad URIs
    Case("traversal", _get(b"/../../etc/passwd"), 400),
    Case("encoded traversal", _get(b"/%2e%2e/%2e%2e/etc/passwd"), 400),
    Case("static traversal", _get(b"/static/../../etc/passwd"), 400),
    Case("encoded slash traversal", _get(b"/..%2f..%2fetc%2fpasswd"), 400),
    Case("mixed-case encoded dots", _get(b"/%2E%2e/predict"), 400),
    Case("NUL escape", _get(b"/predict%00"), 400),
    Case("raw NUL in target", _get(b"/predict\x00x"), 400),
    Case("bad escape", _get(b"/predict%zz"), 400),
    # bad headers and framing
    Case("header without colon", b"GET / HTTP/1.1\r\nHost api\r\n\r\n", 400),
    Case("no Host on 1.1", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
    Case("two Host headers", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    Case("NUL in header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    Case("folded header", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    Case(
        "Content-Length not a number",
        b"POST /predict HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n",
        400,
    ),
    Case(
        "Content-Length and chunked",
        b"POST /predict HTTP/1.1\r\n"
        + H
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    Case(
        "unknown Transfer-Encoding",
        b"POST /predict HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
        400,
    ),
    Case(
        "broken chunk size",
        b"POST /predict HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
        400,
    ),
    # methods
    Case("TRACE", b"TRACE / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("TRACE predict", b"TRACE /predict HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("TRACK", b"TRACK / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("unknown method", b"FROBNICATE / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("PROPFIND", b"PROPFIND / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("DELETE", b"DELETE /predict HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405),
    Case("CONNECT", b"CONNECT example.org:443 HTTP/1.1\r\n" + H + b"\r\n", 400),
    # oversize
    Case(
        "body over the limit",
        b"POST /predict HTTP/1.1\r\n"
        + H
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {BIG}\r\n\r\n".encode(),
        413,
    ),
    Case("URI of 20 kB", _get(b"/predict?" + b"a" * 20_000), 414),
    Case("one header of 20 kB", _get(b"/", b"X-Big: " + b"b" * 20_000 + b"\r\n"), 431),
    Case(
        "five headers of 10 kB",
        _get(b"/", b"".join(b"X-H%d: " % i + b"h" * 10_000 + b"\r\n" for i in range(5))),
        431,
    ),
    # the app's own refusals, through nginx
    Case(
        "malformed JSON body",
        b"POST /predict HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN + b"\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\n{oops",
        400,
    ),
    Case("unknown path", _get(b"/no-such-route"), 404),
)


def with_token(raw: bytes, token: str) -> bytes:
    """`raw` with the stack's API token in place of `TOKEN`."""
    return raw.replace(TOKEN, token.encode())


@dataclass(frozen=True)
class Answer:
    """What came back: status (0 = nothing), content type, body and seconds taken."""

    status: int
    content_type: str
    body: bytes
    seconds: float

    def json(self) -> object:
        """The body as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


def parse(raw: bytes, seconds: float) -> Answer:
    """Split a raw HTTP/1.x response into status, content type and body."""
    if not raw:
        return Answer(0, "", b"", seconds)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    ctype = ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            ctype = value.strip().decode(errors="replace")
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            body = _dechunk(body)
    return Answer(status, ctype, body, seconds)


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def send(
    host: str, port: int, raw: bytes, timeout: float = 30.0, *, send_errors_ok: bool = True
) -> Answer:
    """Send `raw` on a fresh connection and read the answer until nginx closes it.

    Every case either asks for ``Connection: close`` or is an error after which nginx
    closes (the socket is not half-closed: nginx would take that for a client gone, 499).

    Args:
        host: nginx's address.
        port: Its port.
        raw: The bytes of the request.
        timeout: Seconds to wait for the whole answer.
        send_errors_ok: Ignore an error while sending (nginx may answer and close before it
            read all of `raw`).
    """
    start = time.monotonic()
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with suppress(OSError) if send_errors_ok else nullcontext():
            sock.sendall(raw)
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return parse(b"".join(chunks), time.monotonic() - start)


def send_slowly(host: str, port: int, first: bytes, budget_s: float) -> Answer:
    """Send `first` and then nothing more, keeping the connection open until nginx acts.

    Returns:
        Whatever nginx sent before closing (status 0 if it closed without a response), and
        the seconds until it closed.
    """
    return send(host, port, first, budget_s, send_errors_ok=False)


# Status 0: the connection is closed with no byte sent (see the module docstring).
SLOW: tuple[Case, ...] = (
    Case("slow headers", b"GET / HTTP/1.1\r\n" + H + b"X-Slow: 1\r\n", 0),
    Case(
        "slow body",
        b"POST /predict HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"instances": [',
        0,
    ),
)
