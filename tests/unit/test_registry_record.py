"""Training records: tags from a record, details read back from it or from older tags."""

from __future__ import annotations

import json
import math

from persona.registry.record import FILTER_TAGS, filter_tags, read_details

GATES = {
    "passed": True,
    "metric": "silhouette",
    "champion_score": 0.5,
    "challenger_score": 0.52,
    "label_stability": 0.99,
    "drift_demanded": False,
    "checks": [{"name": "metric", "passed": True, "waived": False, "detail": "x" * 6000}],
    "absorbed": {"rows": 0, "unassigned": 3, "month_rows": 400, "share": 0.0, "by_persona": {}},
}
RECORD = {
    "k": 4,
    "selection_metric": "silhouette",
    "score": 0.52,
    "personas": ["a", "b", "c", "candidate-1"],
    "training_months": ["2025-02", "2025-03"],
    "data_hash": "h",
    "reason": "drift",
    "trained_from_version": "1",
    "drift_demanded": True,
    "label_stability": 0.99,
    "candidates": ["candidate-1"],
    "retired": [],
    "gates": GATES,
    "needs_review": True,
    "review_reasons": ["candidate candidate-1: 80 rows"],
    "candidates_detail": [{"persona_id": "candidate-1", "rows": 80}],
}
# What older code tagged a version with (the 17 tags), gates cut at 4,900 characters.
OLD_TAGS = {
    "kind": "kmeans",
    "training_months": "2025-02,2025-03",
    "data_hash": "h",
    "reason": "drift",
    "trained_from_version": "1",
    "k": "4",
    "personas": "a,b,c,candidate-1",
    "selection_metric": "silhouette",
    "selection_metric_value": "0.52",
    "label_stability_vs_champion": "0.990000",
    "candidate_personas": "candidate-1",
    "retired_candidates": "",
    "drift_demanded": "true",
    "gates_passed": "true",
    "gates": json.dumps(GATES)[:4900],
    "needs_review": "true",
    "review_reasons": json.dumps(["candidate candidate-1: 80 rows"]),
    "candidates_detail": json.dumps([{"persona_id": "candidate-1", "rows": 80}]),
    "absorbed_rows": "0",
}
DETAILS = {k: RECORD[k] for k in read_details({}, {})}


def test_tags_of_a_record_are_the_filters_and_whole() -> None:
    tags = filter_tags(RECORD)
    assert tuple(tags) == FILTER_TAGS
    assert {k: OLD_TAGS[k] for k in FILTER_TAGS} == tags  # the same values as before
    assert read_details(RECORD, tags) == DETAILS  # the record wins; nothing cut
    assert read_details(RECORD, tags)["gates"]["checks"][0]["detail"] == "x" * 6000


def test_versions_of_older_code_are_read_from_their_tags() -> None:
    # Tags only (no artifact, or an artifact with the training summary alone).
    summary_only = {k: RECORD[k] for k in ("k", "selection_metric", "score", "personas")}
    for record in ({}, summary_only):
        details = read_details(record, OLD_TAGS)
        assert {k: v for k, v in details.items() if k != "gates"} == {
            k: v for k, v in DETAILS.items() if k != "gates"
        }
        # The cut gates JSON cannot be parsed: the verdict tag is kept, and says so.
        assert details["gates"]["passed"] is True and "cut" in details["gates"]["note"]
    whole = {**OLD_TAGS, "gates": json.dumps({"passed": False})}
    assert read_details({}, whole)["gates"] == {"passed": False}


def test_unknown_values_read_as_before() -> None:
    details = read_details({"label_stability": None}, {"kind": "catalog"})
    assert math.isnan(details["label_stability"]) and details["gates"] is None
    assert details["k"] is None and details["personas"] == [] and not details["needs_review"]
