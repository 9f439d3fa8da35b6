"""The persisted state of one month's cycle: `monitoring_runs.action_taken` of its run.

Pure functions: parse and write the state text (and read the run a month's cycle acts on,
`PinnedRun`); the steps in `persona.flows` read it to
know what is already done, so each step is idempotent and a month can be replayed from
any door (CLI, Mage) any number of times.

Grammar of ``action_taken``:

- empty: the run was never acted on;
- ``pending:<verdict>[:alerted][:promoted|:kept]`` while the month is in progress
  (``alerted``: the alert of a ``watch`` / ``retrain`` verdict went out; ``promoted`` /
  ``kept``: the promote step decided);
- a final action once the label step finished: ``none``, ``alerted``,
  ``retrained_challenger`` or ``retrained_promoted``;
- ``stale:<earlier text>`` once the month's data was replaced (`persona data ingest
  --replace`): the run no longer holds the month's state, so the next cycle of the month
  starts afresh (`is_stale`; `store.survey_replace` writes the mark).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from persona.months import Window, parse_window

PENDING = "pending"
STALE_PREFIX = "stale:"
FINAL = ("none", "alerted", "retrained_challenger", "retrained_promoted")
ALERTING = ("watch", "retrain")
RETRAIN = "retrain"


@dataclass(frozen=True)
class CycleState:
    """Where a month's cycle stands.

    Attributes:
        verdict: The monitoring verdict the month's cycle acts on.
        final: The final action once the month is complete, else None.
        alerted: The verdict's alert went out (or none was due).
        promotion: ``promoted`` / ``kept`` once the promote step decided, else None.
    """

    verdict: str
    final: str | None = None
    alerted: bool = False
    promotion: str | None = None

    @property
    def done(self) -> bool:
        """Whether the month's cycle is complete."""
        return self.final is not None

    @property
    def promoted(self) -> bool:
        """Whether this month's challenger was made champion by the cycle."""
        if self.final is not None:
            return self.final == "retrained_promoted"
        return self.promotion == "promoted"

    @property
    def promote_decided(self) -> bool:
        """Whether the promote step has taken its decision (or nothing was to decide)."""
        return self.verdict != RETRAIN or self.done or self.promotion is not None

    def with_alerted(self) -> CycleState:
        """The state after the alert went out."""
        return replace(self, alerted=True)

    def with_promotion(self, promoted: bool) -> CycleState:
        """The state after the promote step decided."""
        return replace(self, promotion="promoted" if promoted else "kept")

    def finished(self) -> CycleState:
        """The state after the label step: the final action of the month."""
        return replace(self, final=final_action(self.verdict, self.promoted))

    def encode(self) -> str:
        """The ``action_taken`` text of this state."""
        if self.final is not None:
            return self.final
        parts = [PENDING, self.verdict]
        if self.alerted:
            parts.append("alerted")
        if self.promotion is not None:
            parts.append(self.promotion)
        return ":".join(parts)


def is_stale(action: str | None) -> bool:
    """Whether a run's month was replaced since it ran (the run no longer counts)."""
    return (action or "").startswith(STALE_PREFIX)


def final_action(verdict: str, promoted: bool) -> str:
    """The final action of a month from its verdict and whether it promoted."""
    if verdict == RETRAIN:
        return "retrained_promoted" if promoted else "retrained_challenger"
    return "alerted" if verdict in ALERTING else "none"


def parse_state(action: str | None, decision: str) -> CycleState:
    """Read the state of a month from its run's ``action_taken`` and ``decision``.

    Args:
        action: The stored ``action_taken`` (None when the run was never acted on).
        decision: The run's verdict (used when the text does not carry one).

    Returns:
        The state; an unknown text counts as a fresh state of `decision`.
    """
    text = (action or "").strip()
    if text in FINAL:
        return CycleState(verdict=decision, final=text, alerted=True)
    parts = text.split(":")
    if len(parts) < 2 or parts[0] != PENDING:
        return CycleState(verdict=decision, alerted=decision not in ALERTING)
    flags = set(parts[2:])
    promotion = next((p for p in ("promoted", "kept") if p in flags), None)
    alerted = "alerted" in flags or parts[1] not in ALERTING
    return CycleState(verdict=parts[1], alerted=alerted, promotion=promotion)


@dataclass(frozen=True)
class PinnedRun:
    """The monitoring run a month's cycle acts on (its earliest marked run), as stored.

    Attributes:
        run_id: The run.
        decision: Its verdict.
        action_taken: Its ``action_taken`` text (None: never acted on).
        model_version: The model version the month was checked with.
        reference_months: The reference window it was compared with (None: not stored).
    """

    run_id: int
    decision: str
    action_taken: str | None = None
    model_version: str | None = None
    reference_months: Window | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> PinnedRun:
        """Read a `monitoring_runs` row (values from the store are parsed here)."""
        refs = row.get("reference_months")
        return cls(
            run_id=int(row["run_id"]),
            decision=str(row["decision"]),
            action_taken=row.get("action_taken"),
            model_version=None if row.get("model_version") is None else str(row["model_version"]),
            reference_months=None if refs is None else parse_window(str(refs)),
        )

    @property
    def state(self) -> CycleState:
        """The month's cycle state this run holds."""
        return parse_state(self.action_taken, self.decision)
