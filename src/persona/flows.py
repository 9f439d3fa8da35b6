"""The monthly cycle, defined once: four persisted, idempotent steps per month.

1. `check`: govern champion moves made outside the platform (`registry.sync_champion`),
   label the month with the champion, monitor it against the reference window, record the
   decision and send its alert. Returns the branch: ``retrain`` or ``label``.
2. `retrain` (branch ``retrain``): train and register the challenger on the window.
3. `promote` (branch ``retrain``): make it champion when the gates pass, it needs no
   review and ``AUTO_PROMOTE`` is on; never move the alias back to an older version.
4. `label`: label the month with the model that ends up champion for it, and close the
   month with its final action.

`run_month` (``persona run-month``) runs the four in order; the Mage pipeline runs each
as one block through ``persona cycle <step>`` and only follows the branch `check` returns.
Every decision lives here.

Replay: a month's state is the ``action_taken`` of its run in `monitoring_runs` (the
earliest run of the month a cycle acted on; see `persona.cycle_state`). A step reads it
first and does only what is not done yet: a replay uses the same model version and
reference window as the first run, sends no second alert, trains nothing twice and never
re-decides a promotion. Any month, any number of times, from the CLI or Mage in any mix,
leaves the state of one run. A failure part-way leaves only completed steps behind; the
next run finishes the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from persona import alerts, labeling, monitoring, registry
from persona.cycle_results import (
    Challenger,
    CheckStep,
    LabelStep,
    MonthSummary,
    PromoteStep,
    RetrainStep,
    Skipped,
    StepResult,
)
from persona.cycle_state import RETRAIN, CycleState, PinnedRun, is_stale
from persona.errors import NotIngestedError, PersonaError, RegistryError
from persona.monitoring.results import CheckRun
from persona.months import Month, Window, resolve_month
from persona.registry import reviews
from persona.settings import Settings
from persona.store import assignments
from persona.store import monitoring as runs_store
from persona.store.engine import open_store
from persona.store.locks import store_lock
from persona.store.survey_queries import count_rejects, list_months, stored_window

log = logging.getLogger(__name__)

STEPS = ("check", "retrain", "promote", "label")


class CycleError(PersonaError):
    """A step ran before the step it depends on (e.g. `promote` before `check`)."""


@contextmanager
def _store(settings: Settings) -> Iterator[Engine]:
    engine = open_store(settings.database_url, settings)
    try:
        yield engine
    finally:
        engine.dispose()


def _month_run(engine: Engine, month: Month) -> PinnedRun | None:
    """The run a cycle of `month` acts on: the earliest run of the month that is marked.

    Runs marked stale (the month's data was replaced since) are not: the next cycle of the
    month checks, labels and decides it afresh.
    """
    runs = [
        r
        for r in runs_store.list_runs(engine, month=month)
        if r.action_taken and not is_stale(r.action_taken)  # stale: the month was replaced
    ]
    return PinnedRun.from_row(min(runs, key=lambda r: r.run_id).to_dict()) if runs else None


def _require(engine: Engine, month: Month, step: str) -> tuple[PinnedRun, CycleState]:
    run = _month_run(engine, month)
    if run is None:
        raise CycleError(
            f"month {month} has no checked cycle: run `persona cycle check --month {month}` "
            f"before the {step} step"
        )
    return run, run.state


def _save(engine: Engine, run: PinnedRun, state: CycleState) -> None:
    runs_store.set_action(engine, run.run_id, state.encode())


def _loaded(settings: Settings, version: str) -> registry.LoadedModel:
    return registry.load_model_for_serving(settings, f"models:/{settings.model_name}/{version}")


def _label(engine: Engine, settings: Settings, month: Month, loaded: Any) -> int:
    return labeling.label_month(settings, engine, month, loaded=loaded).written


def _window(settings: Settings, engine: Engine, month: Month) -> Window:
    return stored_window(engine, month, settings.training_window_months)


# --- step 1: check ------------------------------------------------------------------------


def check(
    settings: Settings,
    engine: Engine,
    month: Month,
    reference_months: Window | None = None,
) -> CheckStep:
    """Step 1: govern the champion, label the month, monitor it, record and alert.

    Args:
        settings: The settings.
        engine: The survey store.
        month: Survey month (must be ingested).
        reference_months: Override of the reference window (default: the window the
            month's first cycle used, else the champion's training months).

    Returns:
        The branch (``retrain`` or ``label``), verdict, reasons, rows, reference window,
        the model the month is checked and labelled with, labels written, alerts, report,
        monitoring run, whether it is a replay, and what `sync_champion` found.

    Raises:
        PersonaError: No champion (bootstrap first), no data, MLflow errors.
    """
    with _month_lock(settings, engine, month):  # two copies of the step alert once
        return _check(settings, engine, month, reference_months)


def _check(
    settings: Settings, engine: Engine, month: Month, reference_months: Window | None
) -> CheckStep:
    governance = registry.sync_champion(settings, engine)
    champion = registry.alias_version(settings, registry.CHAMPION)
    if champion is None:
        raise RegistryError(
            f"model {settings.model_name!r} has no champion: run `persona model bootstrap`"
        )
    pinned = _month_run(engine, month)
    version = str(pinned.model_version) if pinned else champion
    refs = reference_months or None
    if refs is None and pinned is not None:
        refs = pinned.reference_months
    loaded = _loaded(settings, version)
    written = _label(engine, settings, month, loaded)
    result = monitoring.run_check(settings, engine, month, refs, loaded=loaded)
    run = pinned or PinnedRun(int(result.run_id or 0), result.verdict)
    state = run.state
    if run.action_taken is None:
        _save(engine, run, state)
    state, sent = _alert(settings, engine, month, run, state, result)
    return CheckStep(
        month=month,
        verdict=state.verdict,
        reasons=result.reasons,
        rows=result.n_current,
        reference_months=result.reference_months,
        model_version=version,
        labels_written=written,
        alerts=tuple(sent),
        report_path=result.report_path,
        monitoring_run_id=run.run_id,
        replayed=pinned is not None,
        governance=governance,
        rows_rejected=count_rejects(engine, month),
    )


def _alert(
    settings: Settings,
    engine: Engine,
    month: Month,
    run: PinnedRun,
    state: CycleState,
    result: CheckRun | None = None,
) -> tuple[CycleState, list[alerts.AlertDelivery]]:
    """Send the verdict's alert unless it went out; record it as sent only if it was.

    A delivery that failed (after its retries) leaves the state without ``alerted``, so
    the month's next step (retrain, promote, label, or the check again) sends it again.

    Args:
        settings: Alert settings.
        engine: The survey store.
        month: The month.
        run: The month's run.
        state: Its state.
        result: The check (default: read back from the run).

    Returns:
        The state (saved when the alert went out) and the deliveries (empty: none due).
    """
    if state.done or state.alerted:
        return state, []
    if result is None:
        result = CheckRun.from_row(runs_store.get_run(engine, run.run_id).to_dict())
    sent = alerts.alert_for_check(settings, month, result)
    if all(d.ok for d in sent):
        state = state.with_alerted()
        _save(engine, run, state)
    else:
        log.warning("the alert of %s was not delivered: the next step of the month retries", month)
    return state, sent


# --- step 2: retrain ----------------------------------------------------------------------


def retrain(settings: Settings, engine: Engine, month: Month) -> RetrainStep | Skipped:
    """Step 2: on a ``retrain`` month, train and register the challenger on the window.

    Idempotent: a challenger of the same months and data is looked up, not retrained.

    Returns:
        The challenger (version, training months, gates, review, created), or `Skipped`
        off the retrain branch.

    Raises:
        CycleError: The month was not checked. PersonaError: training / MLflow errors.
    """
    run, state = _require(engine, month, "retrain")
    state, _sent = _alert(settings, engine, month, run, state)
    if state.verdict != RETRAIN:
        return Skipped("retrain", month, state.verdict, "no retrain: the month did not drift")
    window = _window(settings, engine, month)
    with _month_lock(settings, engine, month):  # two copies of the step train once
        trained = registry.find_challenger(settings, engine, window)
        if trained is None:
            reason = f"drift in {month}"
            trained = registry.train_challenger(
                settings, engine, window, reason, drift_demanded=True
            )
        _review_alert(settings, month, trained)
    return RetrainStep(month, Challenger.of(trained))


def _review_alert(
    settings: Settings, month: Month, trained: registry.TrainedVersion
) -> list[alerts.AlertDelivery]:
    """Send a challenger's review alert that is due (new, reminder) or owed by an earlier step.

    A delivery that failed (after its retries) is recorded on the review as owed, so the
    month's next step (promote, label, or the retrain again) sends it again; once it went
    out the mark is cleared. Run under the month lock.

    Returns:
        The deliveries (empty: none due).
    """
    owed = (trained.review or {}).get(reviews.ALERT_OWED)
    kind = trained.alert or owed
    if kind is None:
        return []
    sent = alerts.alert_for_review(settings, month, {**trained.to_dict(), "alert": kind})
    delivered = all(d.ok for d in sent)
    if not delivered:
        log.warning(
            "the review alert of v%s was not delivered: the next step retries", trained.version
        )
    if (None if delivered else kind) != owed:
        reviews.owe_alert(settings, trained.version, None if delivered else kind)
    return sent


def _month_lock(settings: Settings, engine: Engine, month: Month) -> Any:
    return store_lock(engine, f"persona-cycle:{month}", settings.cycle_step_timeout_s)


# --- step 3: promote ----------------------------------------------------------------------


def promotion_refusal(
    challenger: Challenger, champion: str | None, auto_promote: bool
) -> str | None:
    """Why the cycle must not promote its challenger on its own, or None when it may.

    Args:
        challenger: The month's challenger (version, gates, needs_review).
        champion: The current champion version.
        auto_promote: The ``AUTO_PROMOTE`` setting.

    Returns:
        A reason for people, or None.
    """
    if champion is not None and int(champion) >= int(challenger.version):
        return f"champion v{champion} is not older than the challenger: never move back"
    if not challenger.gates_passed:
        return "refused by the promotion gates"
    if challenger.needs_review:
        return "needs review (a candidate, retired or over-grown persona): promote by hand"
    if not auto_promote:
        return "AUTO_PROMOTE is off: awaiting review"
    return None


def promote(
    settings: Settings, engine: Engine, month: Month, actor: str = "flow"
) -> PromoteStep | Skipped:
    """Step 3: on a ``retrain`` month, promote the challenger when the rules allow it.

    The decision is taken once and recorded; a replay reports it and moves nothing.

    Returns:
        The challenger, whether it is promoted, a note, ``AUTO_PROMOTE``, whether an
        earlier run decided; or `Skipped` off the retrain branch.

    Raises:
        CycleError: The month was not checked or its challenger not trained.
    """
    with _month_lock(settings, engine, month):  # two copies of the step decide once
        return _promote(settings, engine, month, actor)


def _promote(settings: Settings, engine: Engine, month: Month, actor: str) -> PromoteStep | Skipped:
    run, state = _require(engine, month, "promote")
    state, _sent = _alert(settings, engine, month, run, state)
    if state.verdict != RETRAIN:
        return Skipped("promote", month, state.verdict, "no promotion: the month did not drift")
    trained = registry.find_challenger(settings, engine, _window(settings, engine, month))
    if trained is None:
        raise CycleError(
            f"month {month} has no challenger: run `persona cycle retrain --month {month}` first"
        )
    _review_alert(settings, month, trained)
    challenger = Challenger.of(trained)
    version = challenger.version

    def step(promoted: bool, note: str | None) -> PromoteStep:
        return PromoteStep(
            month, version, settings.auto_promote, state.promote_decided, promoted, note
        )

    if state.promote_decided:
        return step(state.promoted, "decided by an earlier run")
    champion = registry.alias_version(settings, registry.CHAMPION)
    note: str | None = "already champion"
    if champion != version:
        note = promotion_refusal(challenger, champion, settings.auto_promote)
        if note is None:
            moved = registry.promote(
                settings, engine, version=version, reason=f"drift in {month}", actor=actor
            )
            note = "promoted" if moved.promoted else str(moved.note)
            if moved.relabelled:  # labels follow the champion (registry.relabel)
                note += f"; relabelled {', '.join(moved.relabelled)}"
    promoted = registry.alias_version(settings, registry.CHAMPION) == version
    _save(engine, run, state.with_promotion(promoted))
    return step(promoted, note)


# --- step 4: label ------------------------------------------------------------------------


def label(settings: Settings, engine: Engine, month: Month) -> LabelStep | Skipped:
    """Step 4: label the month with the model that ends up champion for it; close the month.

    On a ``retrain`` month it waits for the promote step (returns `Skipped`), so running
    the branches in any order never closes a month early.

    Returns:
        The verdict, model versions before / after, promoted, the challenger, labels
        written, the final action and the persona mix.

    Raises:
        CycleError: The month was not checked.
    """
    run, state = _require(engine, month, "label")
    state, _sent = _alert(settings, engine, month, run, state)
    if not state.promote_decided:
        return Skipped("label", month, state.verdict, "the retrain branch labels this month")
    before = str(run.model_version)
    challenger = None
    if state.verdict == RETRAIN:
        with _month_lock(settings, engine, month):  # two copies of the step alert once
            found = registry.find_challenger(settings, engine, _window(settings, engine, month))
            if found is not None:
                _review_alert(settings, month, found)
        challenger = None if found is None else found.version
    after = challenger if (state.promoted and challenger) else before
    written = 0
    if after != before:
        written = _label(engine, settings, month, _loaded(settings, after))
    if not state.done:
        state = state.finished()
        _save(engine, run, state)
    return LabelStep(
        month=month,
        verdict=state.verdict,
        model_version_before=before,
        model_version_after=after,
        promoted=state.promoted,
        challenger_version=challenger,
        labels_written=written,
        action=state.final,
        persona_mix=assignments.persona_mix(engine, month, settings.model_name, after),
    )


# --- the whole cycle ----------------------------------------------------------------------


def run_step(
    settings: Settings,
    step: str,
    month: Month,
    reference_months: Window | None = None,
    actor: str = "flow",
) -> StepResult:
    """Run one step of the cycle on its own store connection (the CLI's `persona cycle`).

    Args:
        settings: The settings.
        step: One of `STEPS`.
        month: Survey month.
        reference_months: Reference override (``check`` only).
        actor: Who runs it (recorded on promotions).

    Returns:
        The step's result.

    Raises:
        CycleError: Unknown step, or a step run before the one it depends on.
    """
    if step not in STEPS:
        raise CycleError(f"unknown cycle step {step!r}: expected one of {', '.join(STEPS)}")
    with _store(settings) as engine:
        if step == "check":
            return check(settings, engine, month, reference_months)
        if step == "retrain":
            return retrain(settings, engine, month)
        if step == "promote":
            return promote(settings, engine, month, actor)
        return label(settings, engine, month)


def run_month(
    settings: Settings, month: Month, reference_months: Window | None = None, actor: str = "flow"
) -> MonthSummary:
    """Run the monthly cycle for one ingested month: the four steps in order.

    The arguments are those of `run_step` (`reference_months` defaults to the champion's
    training months, or the window an earlier run of this month used).

    Returns:
        The month's summary: rows, verdict, reasons, model versions before and after,
        challenger, promoted, persona mix, report path, labels written.

    Raises:
        PersonaError: No champion (bootstrap first), no data, MLflow errors.
    """
    with _store(settings) as engine:
        checked = check(settings, engine, month, reference_months)
        trained = retrain(settings, engine, month)
        promoted = promote(settings, engine, month, actor)
        labelled = label(settings, engine, month)
    if not isinstance(labelled, LabelStep):  # the promote step always decides first
        raise CycleError(f"month {month}: the label step did not run after the promote step")
    return MonthSummary(checked, trained, promoted, labelled, settings.auto_promote)


def scheduled_month(settings: Settings, month: str | None, run_date: str | None) -> Month:
    """The month a scheduler's run works on (the Mage blocks: `persona cycle serve`).

    A given month is that month. An empty one is the month before `run_date` when it is
    ingested, else the latest ingested month before it: a Run@once clicked today runs the
    newest data, and a schedule whose month is not ingested yet says so in its log.

    Raises:
        MonthError: A bad month or run date. NotIngestedError: no month up to then.
    """
    wanted = resolve_month(month, run_date)
    if month is not None and str(month).strip():
        return wanted
    with _store(settings) as engine:
        stored = [m.month for m in list_months(engine) if m.month <= wanted]
    if not stored:
        raise NotIngestedError([wanted], "the scheduled run (no earlier month either)")
    if stored[-1] != wanted:
        log.warning("%s is not ingested: running the latest ingested month, %s", wanted, stored[-1])
    return stored[-1]


def label_with_champion(settings: Settings, month: Month) -> labeling.LabelResult:
    """Label a month with the current champion (the batch labeling job; idempotent).

    Returns:
        What `labeling.label_month` returns (`LabelResult.to_dict` is the JSON document).
    """
    with _store(settings) as engine:
        return labeling.label_month(settings, engine, month)


def run_year(
    settings: Settings, months: Sequence[Month], actor: str = "flow"
) -> list[MonthSummary]:
    """Run the monthly cycle for each month in order (the demo's year).

    Args:
        settings: The settings.
        months: Months in the order to process them.
        actor: Who runs the cycle.

    Returns:
        One `run_month` summary per month.
    """
    return [run_month(settings, m, actor=actor) for m in months]
