"""What the registry operations return: frozen values, `to_dict()` for ``--json``.

Each `to_dict` gives the keys (and key order) the CLI has always printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from persona.alerts import AlertDelivery
from persona.months import Window
from persona.registry.gates import GateResult
from persona.training.sweep import KFit


@dataclass(frozen=True)
class VersionSummary:
    """A registered version: number, whether this call created it, aliases and tags.

    Attributes:
        version: The version number.
        created: Whether this call registered it (False: it existed already).
        aliases: Its aliases, sorted.
        tags: Its tags.
    """

    version: str
    created: bool
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "version": self.version,
            "created": self.created,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class RegisteredVersion:
    """One row of `list_versions`: a registered version with its aliases and tags.

    Attributes:
        version: The version number.
        aliases: Its aliases, sorted.
        created_at: Creation time in milliseconds since the epoch (``created`` in JSON).
        run_id: The MLflow run that logged it.
        source: Its artifact source URI.
        tags: Its tags.
    """

    version: str
    aliases: tuple[str, ...]
    created_at: int | None
    run_id: str | None
    source: str | None
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the keys ``persona model list --json`` prints)."""
        return {
            "version": self.version,
            "aliases": list(self.aliases),
            "created": self.created_at,
            "run_id": self.run_id,
            "source": self.source,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class TrainedVersion:
    """A challenger version and what its tags say about its training.

    Attributes:
        summary: The version (number, created, aliases, tags).
        training_months: The months it was trained on.
        data_hash: Fingerprint of the training data.
        k: Number of personas (None for a version without the tag).
        personas: Its persona ids.
        candidates: Provisional personas (``candidate-N``) it introduced.
        retired: Personas of the champion it has no cluster for.
        label_stability: Share of the champion's data keeping its persona (NaN: unknown).
        gates: The gate verdict as stored (`GateResult.to_dict`), if any.
        needs_review: Whether a person must review it before promotion.
        review_reasons: Why.
        candidates_detail: Per candidate: rows, share, nearest persona, distance.
        run_id: The training run (only when this call trained it).
        sweep: The k sweep (only when this call trained it).
        review: Its review (`registry.reviews`): status, months seen, candidates' facts.
        alert: The review alert this call calls for: ``new``, ``reminder`` or None.
    """

    summary: VersionSummary
    training_months: Window
    data_hash: str | None
    k: int | None
    personas: tuple[str, ...]
    candidates: tuple[str, ...]
    retired: tuple[str, ...]
    label_stability: float
    gates: dict[str, Any] | None
    needs_review: bool
    review_reasons: tuple[str, ...]
    candidates_detail: tuple[dict[str, Any], ...]
    run_id: str | None = None
    sweep: tuple[KFit, ...] | None = None
    review: dict[str, Any] | None = None
    alert: str | None = None

    @property
    def version(self) -> str:
        """The version number."""
        return self.summary.version

    @property
    def gates_passed(self) -> bool:
        """Whether the stored gate verdict passed."""
        return bool((self.gates or {}).get("passed"))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``run_id`` and ``sweep`` only for a new version)."""
        out = {
            **self.summary.to_dict(),
            "training_months": self.training_months.to_list(),
            "data_hash": self.data_hash,
            "k": self.k,
            "personas": list(self.personas),
            "candidates": list(self.candidates),
            "retired": list(self.retired),
            "label_stability": self.label_stability,
            "gates": self.gates,
            "needs_review": self.needs_review,
            "review_reasons": list(self.review_reasons),
            "candidates_detail": [dict(c) for c in self.candidates_detail],
            "review": self.review,
            "alert": self.alert,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
            out["sweep"] = [fit.to_dict() for fit in self.sweep or ()]
        return out


@dataclass(frozen=True)
class PromotionResult:
    """Outcome of `promote`: moved, refused by the gates, or already champion.

    Attributes:
        promoted: Whether the champion alias moved.
        version: The version asked for.
        previous: The champion before (None: there was none).
        note: Why nothing moved (None when it moved).
        gates: The gate verdict (None: forced, no champion, or not evaluated).
        forced: Whether the gates were skipped (when it moved).
        event_id: The model_events row of the move.
        relabelled: The months relabelled with the new champion (`registry.relabel`).
    """

    promoted: bool
    version: str
    previous: str | None
    note: str | None = None
    gates: GateResult | None = None
    forced: bool = False
    event_id: int | None = None
    relabelled: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out: dict[str, Any] = {
            "promoted": self.promoted,
            "version": self.version,
            "previous": self.previous,
        }
        gates = None if self.gates is None else self.gates.to_dict()
        if self.promoted:
            moved = {"forced": self.forced, "gates": gates, "event_id": self.event_id}
            return {**out, **moved, "relabelled": list(self.relabelled)}
        if gates is not None:
            out["gates"] = gates
        return {**out, "note": self.note}


@dataclass(frozen=True)
class RollbackResult:
    """Outcome of `rollback`.

    Attributes:
        version: The champion now (the previous one restored).
        previous: The champion rolled back.
        event_id: The model_events row of the move.
    """

    version: str
    previous: str
    event_id: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "rolled_back": True,
            "version": self.version,
            "previous": self.previous,
            "event_id": self.event_id,
        }


@dataclass(frozen=True)
class SyncResult:
    """What `sync_champion` found and did.

    Attributes:
        moved: Whether the alias had moved outside the platform.
        champion: The champion version now (None: no champion).
        previous: The champion the audit trail ended with (when moved).
        event_id: The model_events row recorded for the move.
        gates: The gates evaluated after the fact.
        gates_error: Why the gates could not be evaluated.
        challenger_cleared: Whether ``challenger`` (pointing at the new champion) was cleared.
        alerts: What the alert channels answered.
        relabelled: The months relabelled with the new champion (when moved).
    """

    moved: bool = False
    champion: str | None = None
    previous: str | None = None
    event_id: int | None = None
    gates: GateResult | None = None
    gates_error: str | None = None
    challenger_cleared: bool = False
    alerts: tuple[AlertDelivery, ...] = ()
    relabelled: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "moved": self.moved,
            "champion": self.champion,
            "previous": self.previous,
            "event_id": self.event_id,
            "gates": None if self.gates is None else self.gates.to_dict(),
            "gates_error": self.gates_error,
            "challenger_cleared": self.challenger_cleared,
            "alerts": [a.to_dict() for a in self.alerts],
            "relabelled": list(self.relabelled),
        }


@dataclass(frozen=True)
class Approval:
    """Outcome of approving a review: the names given and the promotion.

    Attributes:
        version: The version reviewed.
        names: Persona id -> the name given.
        promotion: The promotion (gates, event, months relabelled).
    """

    version: str
    names: dict[str, str]
    promotion: PromotionResult

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"version": self.version, "names": dict(self.names), **self.promotion.to_dict()}
