"""Batch labeling of a survey month into `persona_assignments`, with lineage.

In-process by default. On PostgreSQL (psycopg2) the month is labelled as it is read
(`store.assignments.label_month_copy`): one connection streams the response ids and
features with a binary COPY, `PersonaModel.predict` labels each chunk, and a binary COPY on
a background thread writes the labels with the model name and version in one transaction,
so reading, labelling and inserting overlap. Elsewhere (SQLite): load the month,
predict on the whole float64 array, write the labels (`store.assignments.write_assignments`).
The table is append-only and unique per (response, model name, version), so labeling a
month again with the same model writes nothing; a new model version appends its own labels.
`via_api` labels through the REST API instead (the original workflow), in chunks, with
the client of `persona.api_client`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from persona.api_client import API_CHUNK, ApiLabeler
from persona.errors import NotIngestedError
from persona.features import FEATURE_NAMES
from persona.model import UNASSIGNED_ID
from persona.months import Month
from persona.settings import Settings
from persona.store import assignments, survey_queries
from persona.store.assignment_copy import factorize
from persona.store.survey_queries import count_month, has_month, streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelResult:
    """What labeling a month did (`to_dict` is the ``--json`` document).

    Attributes:
        month: The month labelled.
        model_name: Registered model name (lineage).
        model_version: Registered model version (lineage).
        rows: Responses of the month.
        written: Labels written now.
        skipped: Labels already there (``rows - written``).
        persona_mix: Labels of the month per persona id, sorted by id.
        unassigned_rate: Share of ``unassigned`` labels.
        seconds: Wall time.
        rows_per_s: Throughput (None when no time passed).
        via: ``in-process`` or the API's URL.
    """

    month: Month
    model_name: str
    model_version: str
    rows: int
    written: int
    skipped: int
    persona_mix: dict[str, int]
    unassigned_rate: float
    seconds: float
    rows_per_s: float | None
    via: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the keys of the ``--json`` output)."""
        return {**asdict(self), "month": str(self.month)}


def label_month(
    settings: Settings,
    engine: Any,
    month: Month,
    loaded: Any = None,
    *,
    via_api: str | None = None,
    chunk: int = API_CHUNK,
) -> LabelResult:
    """Label every response of a month and store the labels with lineage.

    Args:
        settings: Settings (model source; API token for `via_api`).
        engine: The survey store engine.
        month: The month.
        loaded: A `registry.LoadedModel` to use; default: the `MODEL_ALIAS` (champion).
        via_api: Base URL of a running persona API (``http://127.0.0.1:8000``) to label
            through instead of in-process.
        chunk: Records per API request (`via_api` only).

    Returns:
        What was done (`LabelResult`).

    Raises:
        NotIngestedError: The month has no responses.
        RegistryError: No model to label with.
        api_client.LabelingError: The API failed.
    """
    started = time.perf_counter()
    if not has_month(engine, month):
        raise NotIngestedError([month], "labeling")
    if via_api:
        labeler: Any = ApiLabeler(via_api, settings.api_token, chunk)
        name, version = labeler.model_identity()
    else:
        if loaded is None:
            from persona.registry.versions import load_model_for_serving

            loaded = load_model_for_serving(settings)
        name, version = loaded.name, str(loaded.version)
    via = via_api or "in-process"
    mix = assignments.persona_mix(engine, month, name, version)  # empty on a first run
    if mix:  # a rerun (nothing to do) or a resume after a partial run
        rows = count_month(engine, month)
        if sum(mix.values()) >= rows:
            return _result(month, name, version, rows, 0, mix, started, via)
    if not via_api and streams(engine):
        done = assignments.label_month_copy(engine, month, name, version, loaded.model.predict)
        rows, written, mix = done.rows, done.written, done.persona_counts
    else:
        frame = survey_queries.load_month(engine, month)
        features = np.ascontiguousarray(
            frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)
        )
        pred = labeler.predict(features, version) if via_api else loaded.model.predict(features)
        written = assignments.write_assignments(
            engine, frame["response_id"].to_numpy(), month, name, version, pred
        )
        codes, ids = factorize(pred.persona_id)
        counts = np.bincount(codes, minlength=len(ids))
        mix = {str(i): int(n) for i, n in sorted(zip(ids, counts, strict=True))}
        rows = len(frame)
    result = _result(month, name, version, rows, written, mix, started, via)
    log.info(
        "labelled %s with %s v%s: %d rows, %d written in %.2fs",
        month, name, version, rows, written, result.seconds,
    )  # fmt: skip
    return result


def _result(
    month: Month,
    name: str,
    version: str,
    rows: int,
    written: int,
    mix: dict[str, int],
    started: float,
    via: str,
) -> LabelResult:
    seconds = time.perf_counter() - started
    total = sum(mix.values()) or 1
    return LabelResult(
        month=month,
        model_name=name,
        model_version=version,
        rows=rows,
        written=written,
        skipped=rows - written,
        persona_mix=mix,
        unassigned_rate=mix.get(UNASSIGNED_ID, 0) / total,
        seconds=round(seconds, 3),
        rows_per_s=round(rows / seconds, 1) if seconds > 0 else None,
        via=via,
    )
