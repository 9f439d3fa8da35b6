"""The analyst's review loop through the monthly cycle (embedded store, local MLflow).

A segment appears in March and stays. Over March-May the cycle keeps one pending review
(v2), not three versions, and reminds on the schedule instead of repeating the alert. The
analyst approves v2 with a name: /model, /predict, /compat/labels and the stored labels of
every month since March say "Thrifty Tina". A second segment then appears (v3); it is
rejected and, seen again in July and August (when a pending review would be reminded), no
longer reminded nor registered again; June-August are labelled with the name too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from persona import flows, registry
from persona.catalog import Catalog, load_catalog
from persona.features import FEATURE_NAMES
from persona.months import Month
from persona.registry import reviews
from persona.registry.promotion import approve
from persona.serving.app import create_app
from persona.settings import Settings
from persona.store import survey_ingest
from persona.store.engine import open_store
from persona.synth import NEW_SEGMENT_ID, generate_month
from tests.store_reads import load_assignments

SEED, SECOND_SEED = 3, 11
NAME = "Thrifty Tina"


def _month(catalog: Catalog, month: str, segments: int) -> pd.DataFrame:
    """400 rows: stable, plus a 12 % segment (seed 3), plus a second one (seed 11)."""
    scenario = "new_segment" if segments else "stable"
    frame, _ = generate_month(catalog, month, 400, scenario, SEED, new_share=0.12)
    if segments < 2:
        return frame
    extra, truth = generate_month(catalog, month, 400, "new_segment", SECOND_SEED, new_share=0.3)
    extra = extra[truth["persona_id"] == NEW_SEGMENT_ID].copy()
    extra["respondent_id"] = [f"{month.replace('-', '')}-9{i:05d}" for i in range(len(extra))]
    return pd.concat([frame, extra], ignore_index=True)


def _alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [r.getMessage() for r in caplog.records if "review" in r.getMessage()]
    caplog.clear()
    return [m for m in found if m.startswith("ALERT ")]


@pytest.mark.slow
def test_review_loop(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(review_reminder_months=2)
    catalog = load_catalog(settings.persona_catalog)
    engine = open_store(settings.database_url)
    plan = {"2025-01": 0, "2025-02": 0, "2025-03": 1, "2025-04": 1, "2025-05": 1}
    plan |= {"2025-06": 2, "2025-07": 2, "2025-08": 2}
    for month, segments in plan.items():
        frame = _month(catalog, month, segments)
        survey_ingest.ingest_frame(engine, frame, Month(month), f"synth-{month}")
    registry.bootstrap(settings, engine)  # v1 = the catalog, calibrated on January

    # March-May: one pending review, updated; a reminder after two more months, not a copy.
    sent = {}
    for month in ("2025-03", "2025-04", "2025-05"):
        with caplog.at_level(logging.WARNING, logger="persona.alerts"):
            summary = flows.run_month(settings, Month(month)).to_dict()
        assert summary["challenger_version"] == "2" and not summary["promoted"], summary
        sent[month] = _alerts(caplog)
    assert [len(sent[m]) for m in sent] == [1, 0, 1], sent
    first, reminder = sent["2025-03"][0], sent["2025-05"][0]
    assert "v2 for 2025-03 needs review" in first and "% of the month)" in first
    assert "answers that differ most: x" in first and "persona_profile.png" in first
    assert "reminder, v2 still waits for review (since 2025-03, seen 3 months)" in reminder
    versions = [v.version for v in registry.list_versions(settings)]
    assert versions == ["1", "2"]
    (pending,) = reviews.list_reviews(settings)
    listed = pending.to_dict()
    assert listed["version"] == "2" and listed["months_count"] == 3
    (candidate,) = listed["candidates"]
    assert candidate["persona_id"] == "candidate-1" and 0.08 < candidate["share"] < 0.16
    picture = listed["picture"].removeprefix("file://")
    assert Path(picture).read_bytes()[:4] == b"\x89PNG"

    # Approve with a name: promoted through the gates, March-May relabelled at once.
    done = approve(settings, engine, "2", {"candidate-1": NAME}, actor="tester").to_dict()
    assert done["promoted"] and done["relabelled"] == ["2025-03", "2025-04", "2025-05"], done
    for month in ("2025-03", "2025-04", "2025-05"):
        stored = load_assignments(engine, Month(month), settings.model_name, "2")
        names = set(stored.loc[stored["persona_id"] == "candidate-1", "persona_name"])
        assert names == {NAME}, (month, names)
    app = create_app(settings, start_reloader=False)
    client = app.test_client()
    described = client.get("/model").get_json()
    assert described["version"] == "2", described
    assert {p["id"]: p["name"] for p in described["personas"]}["candidate-1"] == NAME
    centre = dict(zip(FEATURE_NAMES, candidate["centroid"], strict=True))
    predicted = client.post("/predict", json=[centre]).get_json()["predictions"][0]
    assert (predicted["persona_id"], predicted["persona_name"]) == ("candidate-1", NAME)
    labels = client.get("/compat/labels").get_json()["labels"]
    assert {"persona_id": "candidate-1", "persona_name": NAME}.items() <= next(
        entry for entry in labels if entry["persona_id"] == "candidate-1"
    ).items()

    # A second segment: a new version (a real change), rejected, then not reminded.
    with caplog.at_level(logging.WARNING, logger="persona.alerts"):
        june = flows.run_month(settings, Month("2025-06")).to_dict()
    assert june["challenger_version"] == "3" and len(_alerts(caplog)) == 1, june
    rejected = reviews.reject(settings, "3", "not a market for us", actor="tester")
    assert rejected.status == "rejected" and reviews.list_reviews(settings) == []
    # July and August: a pending review would be reminded in August (two months after
    # June's alert, REVIEW_REMINDER_MONTHS=2); the rejected one is not, nor registered again.
    for month in ("2025-07", "2025-08"):
        with caplog.at_level(logging.WARNING, logger="persona.alerts"):
            later = flows.run_month(settings, Month(month)).to_dict()
        assert later["challenger_version"] == "3" and _alerts(caplog) == [], (month, later)
    assert [v.version for v in registry.list_versions(settings)] == ["1", "2", "3"]
    # Every month since the segment appeared is labelled with its name by the champion.
    for month in ("2025-06", "2025-07", "2025-08"):
        stored = load_assignments(engine, Month(month), settings.model_name, "2")
        named = stored.loc[stored["persona_id"] == "candidate-1", "persona_name"]
        assert len(named) > 20 and set(named) == {NAME}, (month, set(named))
    engine.dispose()
