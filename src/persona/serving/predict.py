"""The `/predict` hot path on raw bytes: check, parse, validate, label, serialise.

No pandas and no Flask objects here: the WSGI fast path and the Flask view both call
`parse_records` and `render_prediction`. Every client mistake becomes an `ApiError` with
the HTTP status and issues naming the row and field.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from persona.errors import DataValidationError, Issue
from persona.features import FEATURE_NAMES, Bounds, validate_array, validate_records
from persona.model import Prediction
from persona.serving.holder import Loaded
from persona.settings import ServingSettings

_LOADS: Callable[[bytes], Any] = json.loads
_DUMPS: Callable[[Any], bytes] = lambda obj: json.dumps(obj, separators=(",", ":")).encode()  # noqa: E731
JSON_LIBRARY = "json"
# Faster parsers when present: orjson (~3x json) or ujson (~2x, pinned via evidently). A
# body they refuse is parsed again by `json` for its precise error (and its NaN/Infinity).
try:
    import orjson

    _LOADS, _DUMPS, JSON_LIBRARY = orjson.loads, orjson.dumps, "orjson"
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import ujson

        _LOADS, JSON_LIBRARY = ujson.loads, "ujson"
        _DUMPS = lambda obj: ujson.dumps(obj, escape_forward_slashes=False).encode()  # noqa: E731
    except ImportError:
        pass
_GET_FEATURES = itemgetter(*FEATURE_NAMES)
_NUMBER_TYPES = frozenset((int, float))


class ApiError(Exception):
    """A request the API refuses, with its HTTP status.

    Args:
        status: HTTP status code (4xx for client mistakes).
        error: One line saying what is wrong.
        issues: Per row/field problems (JSON ``{"row", "column", "message"}``).
        headers: Extra response headers (e.g. WWW-Authenticate).
    """

    def __init__(
        self,
        status: int,
        error: str,
        issues: Sequence[Issue] = (),
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.issues = list(issues)
        self.headers = list(headers)

    def body(self) -> bytes:
        """Return the JSON error document."""
        return error_body(self.error, self.issues)


def error_body(error: str, issues: Sequence[Issue] = ()) -> bytes:
    """Return ``{"error": ..., "issues": [...]}`` as JSON bytes.

    Client text echoed in a message may hold what the fast encoder refuses (an unpaired
    UTF-16 surrogate, sent as backslash-u-d800): then `json` writes it as an ASCII escape.
    """
    document = {"error": error, "issues": [issue.to_dict() for issue in issues]}
    try:
        return _DUMPS(document)
    except (TypeError, ValueError, UnicodeError):
        return json.dumps(document, ensure_ascii=True, default=str).encode()


@dataclass(frozen=True)
class Limits:
    """What a `/predict` request may contain.

    Attributes:
        max_records: Most records per request (more is 413).
        max_body_bytes: Largest body (more is 413).
        bounds: Allowed feature value range (outside is 422).
        token: Bearer token required on `/predict` ('' = no auth).
    """

    max_records: int
    max_body_bytes: int
    bounds: Bounds
    token: str = ""

    @classmethod
    def of(cls, serving: ServingSettings, bounds: Bounds) -> Limits:
        """The limits of the serving settings (`API_MAX_*`, `API_TOKEN`) with these bounds."""
        return cls(serving.api_max_records, serving.api_max_body_bytes, bounds, serving.api_token)


def check_token(limits: Limits, authorization: str | None) -> None:
    """Check the bearer token when one is configured.

    Raises:
        ApiError: 401 when the header is missing, malformed or the token is wrong.
    """
    if not limits.token:
        return
    challenge = [("WWW-Authenticate", 'Bearer realm="persona"')]
    if not authorization:
        raise ApiError(
            401, "missing bearer token: send 'Authorization: Bearer <token>'", (), challenge
        )
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401, "malformed Authorization header: expected 'Bearer <token>'", (), challenge
        )
    if not hmac.compare_digest(given.strip().encode(), limits.token.encode()):
        raise ApiError(401, "invalid bearer token", (), challenge)


def check_content_type(content_type: str | None) -> None:
    """Accept ``application/json`` (with parameters) and ``*/*+json``.

    Raises:
        ApiError: 415 otherwise.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    shown = media or "none"
    raise ApiError(415, f"unsupported content type {shown!r}: send application/json")


_DIGITS = frozenset(str(i) for i in range(10))


def parse_records(body: bytes, limits: Limits) -> np.ndarray:
    """Parse and validate a `/predict` body into a float64 feature array.

    Args:
        body: The raw request body (already size-checked).
        limits: Record limit and value bounds.

    Returns:
        Array of shape (records, 10) in feature order.

    Raises:
        ApiError: 400 unparseable, 422 wrong shape or bad values, 413 too many records.
    """
    return validated_array(_records_of(parse_json_body(body)), limits)


def parse_json_body(body: bytes) -> Any:
    """The JSON document of a request body (`/predict` and `/compat/predict`).

    Raises:
        ApiError: 400 for an empty body or one that is not JSON (with where it fails).
    """
    if not body.strip():
        raise ApiError(400, "empty request body: send a JSON list of records")
    try:
        return _LOADS(body)
    except ValueError:
        return _parse_strict(body)


def _parse_strict(body: bytes) -> Any:
    """Parse with the json module: its errors say where the body is broken."""
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not UTF-8 text: {exc.reason}") from None
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "request body is not valid JSON: nested too deeply") from None


def validated_array(records: list[Any], limits: Limits) -> np.ndarray:
    """Turn parsed records into a validated float64 array (fast path, then detailed errors).

    Raises:
        ApiError: 413 too many records, 422 with per row/field issues.
    """
    if len(records) > limits.max_records:
        raise ApiError(
            413,
            f"too many records: {len(records)} > {limits.max_records} per request "
            "(API_MAX_RECORDS)",
        )
    fast = _fast_array(records, limits.bounds)
    if fast is not None:
        return fast
    try:
        return validate_records(records, limits.bounds)
    except DataValidationError as exc:
        raise ApiError(422, _summary(exc), exc.issues) from None
    except (OverflowError, ValueError, TypeError) as exc:
        raise ApiError(422, f"invalid records: a value is not a usable number ({exc})") from None


def _fast_array(records: list[Any], bounds: Bounds) -> np.ndarray | None:
    """The common case in C-level loops; None sends the request to `validate_records`.

    Accepts only what `validate_records` accepts: plain objects with exactly the ten
    features, each an int or float (not bool), finite and within bounds.
    """
    n = len(FEATURE_NAMES)
    try:
        if set(map(type, records)) != {dict} or set(map(len, records)) != {n}:
            return None
        flat = list(chain.from_iterable(map(_GET_FEATURES, records)))
        if not _NUMBER_TYPES.issuperset(map(type, flat)):
            return None
        array = np.array(flat, dtype=np.float64).reshape(len(records), n)
        return validate_array(array, bounds, what="records")
    except (KeyError, OverflowError, DataValidationError):
        return None


def _records_of(payload: Any) -> list[Any]:
    if isinstance(payload, list):
        records = payload
    elif isinstance(payload, dict):
        extra = [str(key) for key in payload if key != "instances"]
        if "instances" not in payload or extra:
            issues = [Issue(None, k, "unexpected key") for k in extra]
            if "instances" not in payload:
                issues.insert(0, Issue(None, "instances", "missing key"))
            raise ApiError(422, 'expected a JSON list of records or {"instances": [...]}', issues)
        records = payload["instances"]
        if not isinstance(records, list):
            raise ApiError(
                422,
                f'"instances" must be a list of records, got {type(records).__name__}',
                [Issue(None, "instances", "not a list")],
            )
    else:
        raise ApiError(
            422,
            'expected a JSON list of records or {"instances": [...]}, '
            f"got {type(payload).__name__}",
        )
    if not records:
        raise ApiError(422, "no records: send at least one record keyed by x1..x10")
    if _original_shape(records[0]):
        raise ApiError(
            422,
            "this is the original API's body (records keyed 0..9 or lists of numbers): "
            "send it to POST /compat/predict, or key each record by x1..x10 for /predict",
        )
    return records


def _original_shape(record: Any) -> bool:
    """A record of the original contract: a list, or an object keyed ``"0"``..``"9"``."""
    if isinstance(record, list):
        return True
    return isinstance(record, dict) and bool(record) and all(k in _DIGITS for k in record)


def _summary(exc: DataValidationError) -> str:
    first = exc.issues[0] if exc.issues else None
    head = f"{exc.summary}: {exc.total} problem(s)"
    return f"{head}, first: {first}" if first is not None else head


def render_prediction(loaded: Loaded, features: np.ndarray) -> tuple[bytes, Prediction]:
    """Label validated rows and serialise the response.

    Args:
        loaded: The model to use (read once from the holder by the caller).
        features: Validated array of shape (records, 10).

    Returns:
        The JSON body and the prediction (for metrics).
    """
    pred = loaded.model.predict(features)
    records = pred.records()
    if not pred.assigned.all():
        nearest = pred.nearest_id
        for row in np.flatnonzero(~pred.assigned).tolist():
            records[row]["nearest_persona_id"] = str(nearest[row])
    if len(records) and not np.isfinite(pred.margin).all():
        for record in records:
            if not math.isfinite(record["margin"]):
                record["margin"] = None
    document = {
        "model_name": loaded.name,
        "model_version": loaded.version,
        "predictions": records,
    }
    return _DUMPS(document), pred
