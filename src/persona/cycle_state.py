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

The closed sets (verdicts, final actions, promotion decisions) are `StrEnum`s, so a stored
text compares equal to its member; any other text is a `CycleStateError`, never silently a
fresh state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from persona.errors import PersonaError
from persona.months import Window, parse_window


class Verdict(StrEnum):
    """A monitoring verdict (`persona.monitoring.policy` decides it)."""

    NO_DRIFT = "no_drift"
    WATCH = "watch"
    RETRAIN = "retrain"
    INSUFFICIENT_DATA = "insufficient_data"


class FinalAction(StrEnum):
    """What a month's cycle did, once its label step finished."""

    NONE = "none"
    ALERTED = "alerted"
    RETRAINED_CHALLENGER = "retrained_challenger"
    RETRAINED_PROMOTED = "retrained_promoted"


class Promotion(StrEnum):
    """The promote step's decision on the month's challenger."""

    PROMOTED = "promoted"
    KEPT = "kept"


class CycleStateError(PersonaError):
    """A stored ``action_taken`` is not a cycle state (written by something else)."""


PENDING = "pending"
ALERTED_FLAG = "alerted"
STALE_PREFIX = "stale:"
FINAL = tuple(FinalAction)
ALERTING = (Verdict.WATCH, Verdict.RETRAIN)
RETRAIN = Verdict.RETRAIN
_E = TypeVar("_E", bound=StrEnum)


@dataclass(frozen=True)
class CycleState:
    """Where a month's cycle stands.

    Attributes:
        verdict: The monitoring verdict the month's cycle acts on.
        final: The final action once the month is complete, else None.
        alerted: The verdict's alert went out (or none was due).
        promotion: ``promoted`` / ``kept`` once the promote step decided, else None.
    """

    verdict: Verdict
    final: FinalAction | None = None
    alerted: bool = False
    promotion: Promotion | None = None

    @property
    def done(self) -> bool:
        """Whether the month's cycle is complete."""
        return self.final is not None

    @property
    def promoted(self) -> bool:
        """Whether this month's challenger was made champion by the cycle."""
        if self.final is not None:
            return self.final is FinalAction.RETRAINED_PROMOTED
        return self.promotion is Promotion.PROMOTED

    @property
    def promote_decided(self) -> bool:
        """Whether the promote step has taken its decision (or nothing was to decide)."""
        return self.verdict != RETRAIN or self.done or self.promotion is not None

    def with_alerted(self) -> CycleState:
        """The state after the alert went out."""
        return replace(self, alerted=True)

    def with_promotion(self, promoted: bool) -> CycleState:
        """The state after the promote step decided."""
        return replace(self, promotion=Promotion.PROMOTED if promoted else Promotion.KEPT)

    def finished(self) -> CycleState:
        """The state after the label step: the final action of the month."""
        return replace(self, final=final_action(self.verdict, self.promoted))

    def encode(self) -> str:
        """The ``action_taken`` text of this state."""
        if self.final is not None:
            return self.final
        parts = [PENDING, str(self.verdict)]
        if self.alerted:
            parts.append(ALERTED_FLAG)
        if self.promotion is not None:
            parts.append(self.promotion)
        return ":".join(parts)


def is_stale(action: str | None) -> bool:
    """Whether a run's month was replaced since it ran (the run no longer counts)."""
    return (action or "").startswith(STALE_PREFIX)


def final_action(verdict: str, promoted: bool) -> FinalAction:
    """The final action of a month from its verdict and whether it promoted."""
    if verdict == Verdict.RETRAIN:
        return FinalAction.RETRAINED_PROMOTED if promoted else FinalAction.RETRAINED_CHALLENGER
    return FinalAction.ALERTED if verdict in ALERTING else FinalAction.NONE


def _member(kind: type[_E], text: str, action: str) -> _E:
    try:
        return kind(text)
    except ValueError:
        known = ", ".join(kind)
        raise CycleStateError(
            f"cycle state {action!r}: {text!r} is not a {kind.__name__} ({known})"
        ) from None


def parse_state(action: str | None, decision: str) -> CycleState:
    """Read the state of a month from its run's ``action_taken`` and ``decision``.

    Args:
        action: The stored ``action_taken`` (None or empty when the run was never acted on;
            a ``stale:`` text counts as never acted on: the month was replaced).
        decision: The run's verdict (used when the text does not carry one).

    Returns:
        The state.

    Raises:
        CycleStateError: The text (or the verdict) is not one the cycle writes.
    """
    text = (action or "").strip()
    verdict = _member(Verdict, decision, text or decision)
    if not text or is_stale(text):
        return CycleState(verdict=verdict, alerted=verdict not in ALERTING)
    if text in FINAL:
        return CycleState(verdict=verdict, final=FinalAction(text), alerted=True)
    head, _, rest = text.partition(":")
    if head != PENDING or not rest:
        raise CycleStateError(
            f"cycle state {text!r} is neither a final action ({', '.join(FINAL)}) nor "
            f"{PENDING}:<verdict>[:{ALERTED_FLAG}][:promoted|:kept]"
        )
    pending_verdict, *flags = rest.split(":")
    verdict = _member(Verdict, pending_verdict, text)
    promotion: Promotion | None = None
    alerted = verdict not in ALERTING
    for flag in flags:
        if flag == ALERTED_FLAG:
            alerted = True
        else:
            promotion = _member(Promotion, flag, text)
    return CycleState(verdict=verdict, alerted=alerted, promotion=promotion)


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
        """The month's cycle state this run holds.

        Raises:
            CycleStateError: The run's stored text is not a cycle state (named with the run).
        """
        try:
            return parse_state(self.action_taken, self.decision)
        except CycleStateError as error:
            raise CycleStateError(f"monitoring run {self.run_id}: {error}") from None
