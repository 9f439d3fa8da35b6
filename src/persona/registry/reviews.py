"""Reviews: what a challenger with a candidate persona waits for, kept on the version.

A version that needs a person (a candidate, retired or over-grown persona) carries a
``review`` tag (JSON): its status (``pending``, ``approved``, ``rejected``,
``superseded``), the months its segment was seen, the latest facts of each candidate
(`training.profile.candidate_facts`), the persona profile picture, the month of the
last alert and, while a delivery of it failed, the alert owed (``alert_owed``).
While a review is pending (or was rejected), a later month whose retrain finds
the same fit does not register a new version: the review is updated instead
(`note_seen`), and reminded every ``REVIEW_REMINDER_MONTHS`` months it is seen. A tag
``seen/<window>`` = data hash lets a replay of that month find the version again.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from persona.errors import RegistryError
from persona.model import PersonaModel
from persona.months import Month, Window
from persona.registry.plots import persona_profile_png
from persona.registry.record import read_details, read_record
from persona.registry.tracking import client, configure
from persona.registry.versions import all_versions, get_version
from persona.settings import Settings
from persona.store.engine import utcnow
from persona.training.profile import same_fit

REVIEW_TAG = "review"
PENDING, APPROVED, REJECTED, SUPERSEDED = "pending", "approved", "rejected", "superseded"
PROFILE_ARTIFACT = "plots/persona_profile.png"
ALERT_OWED = "alert_owed"  # the review's alert that failed to go out: new or reminder
_TAG_LIMIT = 4900


def read_review(tags: dict[str, str]) -> dict[str, Any] | None:
    """The review a version's tags hold (None: the version needs no review)."""
    raw = tags.get(REVIEW_TAG)
    return json.loads(raw) if raw else None


def encode(review: dict[str, Any]) -> str:
    """The review as a tag value (oldest months dropped first if it grows too long)."""
    out = dict(review)
    while len(json.dumps(out)) > _TAG_LIMIT and len(out.get("months_seen", [])) > 1:
        out["months_seen"] = out["months_seen"][1:]
    return json.dumps(out)


def new_review(month: Month, facts: list[dict[str, Any]], picture: str | None) -> dict[str, Any]:
    """A review opened by `month`'s retrain."""
    return {
        "status": PENDING,
        "first_month": str(month),
        "last_month": str(month),
        "months_seen": [str(month)],
        "last_alert_month": str(month),
        "candidates": facts,
        "picture": picture,
    }


def seen_again(
    review: dict[str, Any], month: Month, facts: list[dict[str, Any]], remind_every: int
) -> tuple[dict[str, Any], bool]:
    """The review after its segment is seen in `month`, and whether a reminder is due.

    The stored centroids stay those of the version (what a person reviews); the month's
    size and share are updated. A reminder is due on a pending review once `remind_every`
    (> 0) months were seen since the last alert.
    """
    seen = sorted({*review.get("months_seen", []), str(month)})
    latest = {f["persona_id"]: f for f in facts}
    candidates = [
        {**c, **{k: latest[c["persona_id"]][k] for k in ("rows", "share")}}
        if c["persona_id"] in latest
        else c
        for c in review.get("candidates", [])
    ]
    last_alert = review.get("last_alert_month") or review.get("first_month", "")
    since = [m for m in seen if m > last_alert]
    remind = review.get("status") == PENDING and remind_every > 0 and len(since) >= remind_every
    out = {**review, "months_seen": seen, "last_month": max(seen), "candidates": candidates}
    if remind:
        out["last_alert_month"] = str(month)
    return out, remind


def log_profile(
    mlc: MlflowClient, run_id: str, model: PersonaModel, candidates: Sequence[str], title: str
) -> str:
    """Log the persona profile picture with a version's run; its artifact location."""
    marked = [model.persona_ids.index(c) for c in candidates]
    labels = [f"{n} [{p}]" for p, n in zip(model.persona_ids, model.persona_names, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / Path(PROFILE_ARTIFACT).name
        persona_profile_png(model.feature_names, model.centroids, labels, marked, png, title)
        mlc.log_artifact(run_id, str(png), str(Path(PROFILE_ARTIFACT).parent))
    return f"{mlc.get_run(run_id).info.artifact_uri}/{PROFILE_ARTIFACT}"


def seen_key(months: Window) -> str:
    """The tag a version carries for a window whose retrain found the same fit."""
    return "seen/" + "_".join(months)


def matching_review(
    mlc: MlflowClient,
    name: str,
    trained_from: str,
    personas: Sequence[str],
    facts: Sequence[dict[str, Any]],
) -> ModelVersion | None:
    """The newest pending or rejected review of the same fit from the same champion."""
    for mv in reversed(all_versions(mlc, name)):
        review = read_review(dict(mv.tags))
        if review is None or review.get("status") not in (PENDING, REJECTED):
            continue
        if mv.tags.get("trained_from_version") != trained_from:
            continue
        old = [p for p in mv.tags.get("personas", "").split(",") if p]
        if same_fit(personas, facts, old, review.get("candidates", [])):
            return mlc.get_model_version(name, mv.version)
    return None


def note_seen(
    mlc: MlflowClient,
    name: str,
    mv: ModelVersion,
    review: dict[str, Any],
    seen: tuple[Window, str],
) -> None:
    """Store the updated review and the window (with its data hash) that saw it."""
    mlc.set_model_version_tag(name, mv.version, REVIEW_TAG, encode(review))
    window, data_hash = seen
    mlc.set_model_version_tag(name, mv.version, seen_key(window), data_hash)


def supersede(mlc: MlflowClient, name: str, by: str) -> None:
    """Close the pending reviews older than version `by` (a real change replaced them)."""
    for mv in all_versions(mlc, name):
        review = read_review(dict(mv.tags))
        if review and review.get("status") == PENDING and int(mv.version) < int(by):
            review.update(status=SUPERSEDED, superseded_by=by)
            mlc.set_model_version_tag(name, mv.version, REVIEW_TAG, encode(review))


def owe_alert(settings: Settings, version: str, kind: str | None) -> None:
    """Record on a version's review that its alert (``new`` / ``reminder``) is owed.

    A delivery that failed is sent again by the month's next step (`flows`); None clears
    the mark once it went out. A version without a review is left alone.
    """
    mlc = client(settings)
    mv = get_version(mlc, settings.model_name, version)
    review = read_review(dict(mv.tags))
    if review is None or review.get(ALERT_OWED) == kind:
        return
    review.pop(ALERT_OWED, None)
    if kind is not None:
        review[ALERT_OWED] = kind
    mlc.set_model_version_tag(settings.model_name, mv.version, REVIEW_TAG, encode(review))


@dataclass(frozen=True)
class Review:
    """A version that waits for (or got) a person's decision.

    Attributes:
        version: The version.
        status: ``pending``, ``approved``, ``rejected`` or ``superseded``.
        training_months: Its training window.
        trained_from: The champion it was trained from.
        gates_passed: Whether its promotion gates passed.
        reasons: Why it needs review.
        state: The review tag (months seen, candidates' facts, picture, decision).
    """

    version: str
    status: str
    training_months: str
    trained_from: str
    gates_passed: bool
    reasons: tuple[str, ...]
    state: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            **self.state,
            "version": self.version,
            "status": self.status,
            "training_months": self.training_months,
            "trained_from": self.trained_from,
            "gates_passed": self.gates_passed,
            "reasons": list(self.reasons),
            "months_count": len(self.state.get("months_seen", [])),
        }


def _review_of(mlc: MlflowClient, mv: ModelVersion) -> Review | None:
    tags = dict(mv.tags)
    state = read_review(tags)
    if state is None:
        return None
    details = read_details(read_record(mlc, mv), tags)
    return Review(
        version=str(mv.version),
        status=str(state.get("status")),
        training_months=tags.get("training_months", ""),
        trained_from=tags.get("trained_from_version", ""),
        gates_passed=tags.get("gates_passed") == "true",
        reasons=tuple(details["review_reasons"]),
        state=state,
    )


def list_reviews(settings: Settings, everything: bool = False) -> list[Review]:
    """The reviews waiting for a person (all of them with `everything`), newest first."""
    configure(settings)
    mlc = client(settings)
    status = lambda mv: (read_review(dict(mv.tags)) or {}).get("status")  # noqa: E731
    kept = [
        mv for mv in all_versions(mlc, settings.model_name) if everything or status(mv) == PENDING
    ]
    found = [_review_of(mlc, mv) for mv in reversed(kept)]
    return [r for r in found if r is not None]


def decide(settings: Settings, version: str, status: str, reason: str, actor: str) -> Review:
    """Record a person's decision on a version's review (the approve / reject step).

    Raises:
        RegistryError: Unknown version, or a version with no review to decide.
    """
    mlc = client(settings)
    mv = get_version(mlc, settings.model_name, version)
    review = read_review(dict(mv.tags))
    if review is None:
        raise RegistryError(f"version {version} of {settings.model_name!r} has no review")
    stamp = {"at": utcnow().isoformat(), "actor": actor, "reason": reason}
    review.update(status=status, decision=stamp)
    mlc.set_model_version_tag(settings.model_name, mv.version, REVIEW_TAG, encode(review))
    found = _review_of(mlc, mlc.get_model_version(settings.model_name, mv.version))
    assert found is not None
    return found


def reject(settings: Settings, version: str, reason: str, actor: str = "cli") -> Review:
    """Reject a pending review: the version is never promoted by the cycle, not reminded.

    A later retrain that finds the same fit is recorded on this version and sends nothing.

    Raises:
        RegistryError: Unknown version, no pending review, or an empty reason.
    """
    if not reason.strip():
        raise RegistryError("give a reason for the rejection (--reason)")
    pending = [r.version for r in list_reviews(settings)]
    if str(version) not in pending:
        raise RegistryError(
            f"version {version} has no pending review (pending: {', '.join(pending) or 'none'})"
        )
    return decide(settings, str(version), REJECTED, reason, actor)
