"""A small seeded version of benchmarks/segment_discovery.py through the monthly cycle.

A 12 % segment appears in March (placed 12-20 from its nearest persona, random persona
membership); `flows.run_month` (what `persona run-month` calls) with default settings must
find it, hold it as ``candidate-1`` in the challenger, mark the challenger for review, not
promote it although AUTO_PROMOTE is on, and alert with the candidate and the commands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from persona import flows, registry
from persona.catalog import load_catalog
from persona.features import FEATURE_NAMES
from persona.months import Month
from persona.settings import Settings
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.synth import NEW_SEGMENT_ID, generate_month

SEED = 3


@pytest.mark.slow
def test_new_segment_becomes_a_reviewed_candidate(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings()
    assert settings.auto_promote
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(settings.database_url)
    for month in ("2025-01", "2025-02", "2025-03"):
        scenario = "new_segment" if month == "2025-03" else "stable"
        frame, truth = generate_month(catalog, month, 400, scenario, SEED, new_share=0.12)
        survey_ingest.ingest_frame(engine, frame, month, f"synth-{month}")
    segment = frame.loc[truth["persona_id"] == NEW_SEGMENT_ID, list(FEATURE_NAMES)].to_numpy()
    registry.bootstrap(settings, engine)

    with caplog.at_level(logging.WARNING, logger="persona.alerts"):
        march = flows.run_month(settings, Month("2025-03")).to_dict()
    assert march["verdict"] == "retrain" and march["challenger_version"] == "2"
    assert march["needs_review"] and not march["promoted"]
    assert march["review_reasons"][0].startswith("candidate candidate-1: ")
    assert registry.alias_version(settings, registry.CHAMPION) == "1"
    alert = next(r.getMessage() for r in caplog.records if "needs review" in r.getMessage())
    assert "candidate-1: " in alert and "nearest persona " in alert
    assert "persona review approve 2 --name candidate-1=" in alert

    # A person reviews and promotes: the segment is labelled with the candidate, not hidden.
    done = registry.promote(settings, engine, "2", reason="reviewed", actor="tester").to_dict()
    assert done["promoted"], done
    model = registry.load_model_for_serving(settings).model
    labels = model.predict(segment).persona_id
    assert np.mean(np.isin(labels, catalog.ids)) < 0.05
    assert np.mean(labels == "candidate-1") > 0.9
    engine.dispose()
