"""The original study's REST contract, kept for old clients: `POST /compat/predict`.

The original API took `pandas.DataFrame(rows).to_dict("records")` - records keyed
``"0"``..``"9"`` - and answered ``{"labels": [...]}`` with K-Means cluster numbers. This
route accepts the three body shapes old clients send:

- records keyed ``"0"``..``"9"`` (a DataFrame without column names);
- records keyed ``x1``..``x10``;
- a list of lists of ten numbers;

and answers ``{"labels": [...]}``. A label is a *stable persona index*, not a cluster
number, so it means the same persona after every retrain:

- a catalog persona's index is its position in the catalog (`PERSONA_CATALOG`), 0-based;
- a provisional persona ``candidate-N`` gets ``CANDIDATE_BASE + N - 1`` (100, 101, ...), so
  a candidate never takes a catalog persona's index, and growing the catalog moves none;
- an unassigned respondent (beyond every persona's radius) gets ``-1``.

``?detail=true`` adds the new fields: model name and version, and the full prediction per
record (``persona_id``, ``persona_name``, ``distance``, ``margin``...). `GET /compat/labels`
lists which persona each index stands for. Validation is the same as `/predict`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from flask import Flask, Response, request

from persona.catalog import Catalog, load_catalog
from persona.errors import PersonaError
from persona.features import FEATURE_NAMES, N_FEATURES
from persona.model import PersonaModel
from persona.serving.holder import Loaded
from persona.serving.predict import (
    _DUMPS,
    _LOADS,
    ApiError,
    Limits,
    check_content_type,
    check_token,
    parse_json_body,
    render_prediction,
    validated_array,
)

if TYPE_CHECKING:
    from persona.serving.app import PersonaWsgi
    from persona.settings import Settings

log = logging.getLogger(__name__)

COMPAT_PREDICT = "/compat/predict"
COMPAT_LABELS = "/compat/labels"
COMPAT_ROUTES = (COMPAT_PREDICT, COMPAT_LABELS)
CANDIDATE_BASE = 100
UNASSIGNED_LABEL = -1
_JSON = "application/json"
_DIGIT_KEYS = {str(i): name for i, name in enumerate(FEATURE_NAMES)}
_TRUE = frozenset(("1", "true", "yes", "on"))
# As `training.alignment.CANDIDATE_PREFIX` (not imported: it would load scikit-learn here).
CANDIDATE_PREFIX = "candidate-"


def stable_indexes(persona_ids: Sequence[str], catalog_ids: Sequence[str]) -> dict[str, int]:
    """Map each persona id of a model to its stable index.

    Args:
        persona_ids: The model's persona ids (any order; retired personas may be absent).
        catalog_ids: The catalog's persona ids, in catalog order.

    Returns:
        ``{persona_id: index}``: catalog position, or ``CANDIDATE_BASE + N - 1`` for
        ``candidate-N``.

    Raises:
        ApiError: 503 when a persona is neither in the catalog nor a ``candidate-N`` (the
            served model was trained from another catalog).
    """
    position = {pid: i for i, pid in enumerate(catalog_ids)}
    out: dict[str, int] = {}
    for pid in persona_ids:
        number = pid[len(CANDIDATE_PREFIX) :] if pid.startswith(CANDIDATE_PREFIX) else ""
        if pid in position:
            out[pid] = position[pid]
        elif number.isdigit() and int(number) >= 1:
            out[pid] = CANDIDATE_BASE + int(number) - 1
        else:
            raise ApiError(
                503,
                f"persona {pid!r} of the served model has no stable index: it is neither in "
                "the catalog (PERSONA_CATALOG) nor a candidate-N",
            )
    return out


def labels_of(
    model: PersonaModel, persona_ids: np.ndarray, catalog_ids: Sequence[str]
) -> list[int]:
    """Return the stable index of each predicted persona id (``-1`` for unassigned).

    Args:
        model: The model that made the prediction.
        persona_ids: Predicted persona ids, one per record (``"unassigned"`` allowed).
        catalog_ids: The catalog's persona ids, in catalog order.

    Returns:
        One integer label per record.
    """
    index = stable_indexes(model.persona_ids, catalog_ids)
    lookup = np.array([*(index[pid] for pid in model.persona_ids), UNASSIGNED_LABEL])
    order = {pid: i for i, pid in enumerate(model.persona_ids)}
    positions = np.array([order.get(pid, model.k) for pid in persona_ids.tolist()], dtype=int)
    return [int(v) for v in lookup[positions]]


def to_feature_records(payload: Any) -> list[Any]:
    """Turn an original-contract body into records keyed ``x1``..``x10``.

    Records keyed ``"0"``..``"9"`` are renamed; a row given as a list of ten values becomes
    a record; anything else is passed on unchanged, so validation names the problem.

    Args:
        payload: The parsed JSON body.

    Returns:
        The records, in request order.

    Raises:
        ApiError: 422 when the body is not a non-empty list.
    """
    if isinstance(payload, Mapping) and isinstance(payload.get("instances"), list):
        payload = payload["instances"]
    if not isinstance(payload, list):
        raise ApiError(
            422,
            "expected a JSON list of records (keyed 0..9 or x1..x10) or of lists of "
            f"{N_FEATURES} numbers, got {type(payload).__name__}",
        )
    if not payload:
        raise ApiError(422, "no records: send at least one record")
    return [_record(row) for row in payload]


def _record(row: Any) -> Any:
    if isinstance(row, list) and len(row) == N_FEATURES:
        return dict(zip(FEATURE_NAMES, row, strict=True))
    if isinstance(row, list):
        return {"row": row}  # validation: "unexpected field row", every feature missing
    if isinstance(row, Mapping) and row and all(k in _DIGIT_KEYS for k in row):
        return {_DIGIT_KEYS[k]: v for k, v in row.items()}
    return row


def compat_predict(
    body: bytes, loaded: Loaded | None, limits: Limits, catalog: Catalog, detail: bool
) -> tuple[bytes, np.ndarray]:
    """Answer one original-contract request body.

    Args:
        body: The raw request body.
        loaded: The model being served (None: 503).
        limits: Record limit and bounds.
        catalog: The persona catalog that fixes the stable indexes.
        detail: Also return model name/version and the full prediction per record.

    Returns:
        The JSON response body and the predicted persona ids (for metrics).

    Raises:
        ApiError: On any client mistake (4xx) or when no model is loaded (503).
    """
    payload = parse_json_body(body)
    if loaded is None:
        raise ApiError(503, "no model loaded yet; see GET /ready and the server log")
    features = validated_array(to_feature_records(payload), limits)
    rendered, pred = render_prediction(loaded, features)
    labels = labels_of(loaded.model, pred.persona_id, catalog.ids)
    if not detail:
        return _DUMPS({"labels": labels}), pred.persona_id
    document = _LOADS(rendered)
    return _DUMPS({"labels": labels, **document}), pred.persona_id


def label_map(loaded: Loaded | None, catalog: Catalog) -> dict[str, Any]:
    """Describe what each stable index stands for in the catalog and the served model.

    Args:
        loaded: The model being served, if any.
        catalog: The persona catalog.

    Returns:
        ``{"unassigned": -1, "labels": [{"label", "persona_id", "persona_name", "served"}]}``.
    """
    names = dict(zip(catalog.ids, catalog.names, strict=True))
    served: dict[str, str] = {}
    if loaded is not None:
        served = dict(zip(loaded.model.persona_ids, loaded.model.persona_names, strict=True))
    index = stable_indexes([*catalog.ids, *(p for p in served if p not in names)], catalog.ids)
    rows = [
        {
            "label": index[pid],
            "persona_id": pid,
            "persona_name": served.get(pid, names.get(pid, pid)),
            "served": pid in served,
        }
        for pid in sorted(index, key=index.__getitem__)
    ]
    return {
        "unassigned": UNASSIGNED_LABEL,
        "model_version": loaded.version if loaded is not None else None,
        "labels": rows,
    }


def add_routes(app: Flask, wsgi: PersonaWsgi, settings: Settings) -> None:
    """Register `POST /compat/predict` and `GET /compat/labels` on the app.

    Args:
        app: The Flask app.
        wsgi: The app's WSGI layer (holder, metrics, limits).
        settings: Settings (the catalog path).
    """
    state: dict[str, Any] = {}

    def catalog() -> Catalog:
        if "catalog" not in state:
            try:
                state["catalog"] = load_catalog(settings.persona_catalog)
            except PersonaError as exc:
                log.error("compatibility route: %s", exc)
                raise ApiError(503, f"compatibility route unavailable: {exc}") from None
        return state["catalog"]  # type: ignore[no-any-return]

    def answer(status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return Response(body, status, [("Content-Type", _JSON), *headers])

    @app.post(COMPAT_PREDICT)
    def compat_predict_view() -> Response:
        try:
            check_token(wsgi.limits, request.headers.get("Authorization"))
            check_content_type(request.content_type)
            detail = request.args.get("detail", "").strip().lower() in _TRUE
            out, persona_ids = compat_predict(
                request.get_data(cache=False), wsgi.holder.current, wsgi.limits, catalog(), detail
            )
        except ApiError as exc:
            return answer(exc.status, exc.body(), exc.headers)
        wsgi.metrics.count_personas(persona_ids)
        return answer(200, out)

    @app.get(COMPAT_LABELS)
    def compat_labels_view() -> Response:
        try:
            return answer(200, _DUMPS(label_map(wsgi.holder.current, catalog())))
        except ApiError as exc:
            return answer(exc.status, exc.body())
