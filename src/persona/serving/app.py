"""Flask app factory of the persona API.

`create_app` builds a Flask app with `/predict`, `/health`, `/ready`, `/model` and
`/metrics`. `POST /predict` is also served by a thin WSGI layer in front of Flask
(`PersonaWsgi`) that calls the same handler without Flask's request dispatch: the
hot path is bytes in, numpy, bytes out. Every route is counted in the metrics there.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from persona.features import Bounds
from persona.serving import compat
from persona.serving.compat import COMPAT_ROUTES
from persona.serving.holder import ModelCache, ModelHolder, ModelSource
from persona.serving.metrics import Metrics
from persona.serving.predict import (
    ApiError,
    Limits,
    check_content_type,
    check_token,
    error_body,
    parse_records,
    render_prediction,
)
from persona.settings import Settings

log = logging.getLogger(__name__)

_JSON = "application/json"
_STATUS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}
_ROUTES = {p: p for p in ("/predict", "/health", "/ready", "/model", "/metrics", *COMPAT_ROUTES)}
Headers = list[tuple[str, str]]
StartResponse = Callable[..., Any]


class PersonaWsgi:
    """WSGI layer in front of Flask: serves `POST /predict` directly, counts every route.

    Args:
        flask_wsgi: The Flask app's original `wsgi_app`.
        holder: The model holder.
        metrics: The metrics.
        limits: Request limits and token.
        body_timeout_s: Seconds a client may take to send its body (then 408).
        drain_max_bytes: Most bytes of a refused body read and dropped before answering.
    """

    def __init__(
        self,
        flask_wsgi: Callable[..., Any],
        holder: ModelHolder,
        metrics: Metrics,
        limits: Limits,
        body_timeout_s: float = 10.0,
        drain_max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.flask_wsgi = flask_wsgi
        self.holder = holder
        self.metrics = metrics
        self.limits = limits
        self.body_timeout_s = body_timeout_s
        self.drain_max_bytes = drain_max_bytes
        self.reloader = False
        self._pid = -1

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        started = time.perf_counter()
        if self.reloader and self._pid != os.getpid():
            self._pid = os.getpid()
            self.holder.ensure_started()
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/predict" and method == "POST":
            status, headers, body = self.predict(environ)
            start_response(_STATUS[status], headers)
            self.metrics.observe_request(path, method, status, time.perf_counter() - started)
            return [body]
        seen: list[str] = []

        def capture(status: str, headers: Headers, exc_info: Any = None) -> Any:
            seen.append(status)
            return start_response(status, headers, exc_info)

        result = self.flask_wsgi(environ, capture)
        code = int(seen[0][:3]) if seen else 500
        self.metrics.observe_request(
            _ROUTES.get(path, "other"), method, code, time.perf_counter() - started
        )
        return result

    def predict(self, environ: dict[str, Any]) -> tuple[int, Headers, bytes]:
        """Handle `POST /predict` from a WSGI environ; never raises.

        Returns:
            Status code, headers and JSON body.
        """
        extra: Headers = []
        read = False
        _bound_socket(environ, self.body_timeout_s)
        try:
            loaded = self.holder.current
            check_token(self.limits, environ.get("HTTP_AUTHORIZATION"))
            check_content_type(environ.get("CONTENT_TYPE"))
            read = True  # from here on the body is read, or drained by _read_body
            body = _read_body(environ, self.limits.max_body_bytes, self.drain_max_bytes)
            if loaded is None:
                raise ApiError(503, "no model loaded yet; see GET /ready and the server log")
            features = parse_records(body, self.limits)
            out, pred = render_prediction(loaded, features)
            self.metrics.count_personas(pred.persona_id)
            status = 200
        except ApiError as exc:
            status, out, extra = exc.status, exc.body(), exc.headers
            if not read and not _drain(environ, self.drain_max_bytes):
                extra = [*extra, ("Connection", "close")]
        except Exception:
            log.exception("unexpected error in /predict")
            status, out = 500, error_body("internal error; see the server log")
        headers = [("Content-Type", _JSON), ("Content-Length", str(len(out))), *extra]
        return status, headers, out


def _bound_socket(environ: dict[str, Any], timeout_s: float) -> None:
    """Give the client socket a timeout so a stalled body cannot hold a worker forever."""
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        sock.settimeout(timeout_s)


def _read(stream: Any, size: int) -> bytes:
    """Read from the request stream; a client's failure to send becomes an `ApiError`."""
    try:
        return bytes(stream.read(size))
    except TimeoutError:
        raise ApiError(408, "request body not received in time (API_CLIENT_TIMEOUT_S)") from None
    except Exception as exc:  # gunicorn's InvalidChunkSize, NoMoreData...: the client's body
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ApiError(400, f"malformed request body ({type(exc).__name__}: {detail})") from None


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw:
        return None
    try:
        length = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid Content-Length {raw!r}") from None
    if length < 0:
        raise ApiError(400, f"invalid Content-Length {raw!r}")
    return length


def _has_stream(environ: dict[str, Any]) -> bool:
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or bool(environ.get("wsgi.input_terminated"))


def _read_body(environ: dict[str, Any], limit: int, drain_max: int) -> bytes:
    """Read the request body; an over-limit body is drained (up to `drain_max`) first.

    Raises:
        ApiError: 400 malformed, 408 too slow, 413 too large (with ``Connection: close``
            when it was too large to drain).
    """
    stream = environ["wsgi.input"]
    length = _content_length(environ)
    if length is not None:
        if length > limit:
            drained = length <= drain_max and _drain(environ, drain_max)
            raise ApiError(
                413,
                f"request body too large: {length} > {limit} bytes (API_MAX_BODY_BYTES)",
                headers=[] if drained else [("Connection", "close")],
            )
        return _read(stream, length) if length > 0 else b""
    if not _has_stream(environ):
        return b""
    body = _read(stream, limit + 1)
    if len(body) > limit:
        drained = _drain(environ, drain_max - len(body))
        raise ApiError(
            413,
            f"request body too large: more than {limit} bytes (API_MAX_BODY_BYTES)",
            headers=[] if drained else [("Connection", "close")],
        )
    return body


def _drain(environ: dict[str, Any], budget: int) -> bool:
    """Read and drop what is left of the body, at most `budget` bytes.

    A client that sends its whole body before reading the answer (urllib, curl without
    ``Expect``) sees a reset instead of the error when the server closes on unread bytes.

    Returns:
        True when the body was read to its end.
    """
    stream = environ.get("wsgi.input")
    if stream is None:
        return True
    try:
        length = _content_length(environ)
    except ApiError:
        return False
    if length is None and not _has_stream(environ):
        return True
    if length is not None and length > budget:
        return False
    left = budget
    try:
        while left > 0:
            chunk = stream.read(min(left, 65536))
            if not chunk:
                return True
            left -= len(chunk)
        return not stream.read(1)
    except Exception:  # a slow or broken client: give up, the connection closes
        return False


def create_app(
    settings: Settings, loader: ModelSource | None = None, *, start_reloader: bool = True
) -> Flask:
    """Build the API.

    Nothing here waits on the registry for long: the cached model (`MODEL_CACHE_DIR`) is
    served at once if there is one, the first registry check runs in the reload thread and
    is awaited at most `MODEL_STARTUP_WAIT_S`; until a model is loaded `/ready` answers 503
    with the reason. The reload thread is restarted in a forked process on its first
    request (so it runs in every gunicorn worker, preloaded or not). With
    ``start_reloader=False`` the first load is done here, synchronously (tests).

    Args:
        settings: Settings (limits, token, reload interval, model source).
        loader: Where the model comes from; default: the MLflow registry
            (`serving.source.registry_source`).
        start_reloader: Run the background alias check (off in some tests).

    Returns:
        The Flask app; its `extensions["persona"]` holds the holder, metrics and limits.
    """
    serving = settings.serving
    cache: ModelCache | None = None
    if loader is None:
        from persona.serving.source import FileModelCache, registry_source

        loader = registry_source(settings)
        if serving.model_cache_dir:
            cache = FileModelCache(serving.model_cache_dir, loader.description)
    metrics = Metrics()
    holder = ModelHolder(
        loader,
        serving.model_reload_interval_s,
        on_loaded=lambda m: metrics.model_loaded(m.name, m.version, m.alias or ""),
        on_failed=metrics.model_load_failed,
        cache=cache,
    )
    holder.load_cached()
    if start_reloader:
        holder.ensure_started()  # first check at once, in the background
        holder.first_check.wait(serving.model_startup_wait_s)
    else:
        holder.refresh()
    limits = Limits.of(serving, Bounds(settings.feature_min, settings.feature_max))
    app = Flask("persona.serving")
    app.config["MAX_CONTENT_LENGTH"] = serving.api_max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    wsgi = PersonaWsgi(
        app.wsgi_app,
        holder,
        metrics,
        limits,
        body_timeout_s=serving.api_client_timeout_s,
        drain_max_bytes=serving.api_drain_max_bytes,
    )
    wsgi.reloader = start_reloader
    app.wsgi_app = wsgi  # type: ignore[method-assign]
    app.extensions["persona"] = {"holder": holder, "metrics": metrics, "limits": limits}
    _add_routes(app, wsgi)
    compat.add_routes(app, wsgi, settings)  # the original study's contract
    return app


def _predict(wsgi: PersonaWsgi) -> Response:
    """``POST /predict`` through Flask (the WSGI layer serves it first; e.g. a test client)."""
    status, headers, body = wsgi.predict(request.environ)
    return Response(body, status, headers)


def _health(wsgi: PersonaWsgi) -> tuple[dict[str, Any], int]:
    return {"status": "ok", "pid": os.getpid()}, 200


def _ready(wsgi: PersonaWsgi) -> tuple[dict[str, Any], int]:
    holder = wsgi.holder
    loaded = holder.current
    if loaded is None:
        reason = holder.last_error or (
            f"still loading from {holder.source.description}"
            if holder.checking_since is not None
            else "not checked yet"
        )
        return {
            "status": "not ready",
            "error": f"no model loaded: {reason}",
            "issues": [],
            "last_error": holder.last_error,
            "pid": os.getpid(),
        }, 503
    answer: dict[str, Any] = {
        "status": "ready",
        "model_name": loaded.name,
        "model_version": loaded.version,
        "from_cache": holder.from_cache,
        "pid": os.getpid(),
    }
    if holder.from_cache:
        answer["warning"] = (
            f"serving the cached model ({loaded.uri}) until the registry answers"
            + (f"; last error: {holder.last_error}" if holder.last_error else "")
        )
    return answer, 200


def _model(wsgi: PersonaWsgi) -> tuple[dict[str, Any], int]:
    holder, limits = wsgi.holder, wsgi.limits
    loaded = holder.current
    if loaded is None:
        return {"error": "no model loaded", "issues": [], "reload": holder.status().to_dict()}, 503
    return {
        "name": loaded.name,
        "version": loaded.version,
        "alias": loaded.alias,
        "uri": loaded.uri,
        "tags": loaded.tags,
        **loaded.model.describe(),
        "bounds": {"low": limits.bounds.low, "high": limits.bounds.high},
        "limits": {"max_records": limits.max_records, "max_body_bytes": limits.max_body_bytes},
        "auth": bool(limits.token),
        "reload": holder.status().to_dict(),
    }, 200


def _metrics(wsgi: PersonaWsgi) -> Response:
    body, content_type = wsgi.metrics.exposition()
    return Response(body, 200, content_type=content_type)


# (method, path, handler): each handler takes the WSGI layer (holder, metrics, limits).
ROUTES: tuple[tuple[str, str, Callable[[PersonaWsgi], Any]], ...] = (
    ("POST", "/predict", _predict),
    ("GET", "/health", _health),
    ("GET", "/ready", _ready),
    ("GET", "/model", _model),
    ("GET", "/metrics", _metrics),
)


def _http_error(exc: HTTPException) -> Any:
    response = exc.get_response()
    response.set_data(error_body(f"{exc.name}: {exc.description}"))
    response.content_type = _JSON
    return response


def _server_error(exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.path)
    return Response(error_body("internal error; see the server log"), 500, content_type=_JSON)


def _add_routes(app: Flask, wsgi: PersonaWsgi) -> None:
    for method, path, handler in ROUTES:
        endpoint = handler.__name__.lstrip("_")
        app.add_url_rule(path, endpoint, functools.partial(handler, wsgi), methods=[method])
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
