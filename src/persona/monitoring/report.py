"""The Evidently report of a check: the verdict and persona fit first, then feature drift.

One Evidently snapshot per check holds both parts:

1. **Persona fit and verdict** - `evidently_fit.PersonaFitValue` custom metrics (verdict
   code, drifted-feature share, unassigned rate, distance ratio, mix PSI, largest centroid
   shift) whose widgets show the verdict with its reasons, the persona mix of reference and
   current as a chart, and the centroid shift of every persona;
2. **Feature drift** - the `DataDriftPreset` snapshot of `monitoring.drift`. Its headline
   ("Dataset Drift is (NOT) detected") judged only the share of drifted features; it is
   reworded as that input, so no headline contradicts the verdict.

The HTML file is Evidently's own page (the same widgets the Evidently UI shows), written
as-is so the MLflow artifact preview renders all of it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persona.monitoring.check import CheckResult
from persona.monitoring.policy import VERDICTS, Decision
from persona.months import Month, Window
from persona.settings import PolicySettings

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
DRIFT_HEADLINE = "Dataset Drift is"


def report_name(month: Month, reference_months: Window, model_version: str, data_hash: str) -> str:
    """File name of a report: month, reference window, model version, data hash prefix.

    Args:
        month: Current month.
        reference_months: Reference window.
        model_version: Champion version that labelled the data.
        data_hash: Fingerprint of the check's data and parameters.

    Returns:
        E.g. ``drift_2025-03_ref-2025-01_v1_ab12cd34.html``.
    """
    refs = "+".join(reference_months)
    if len(reference_months) > 3:
        refs = f"{reference_months.first}..{reference_months.last}"
    name = f"drift_{month}_ref-{refs}_v{model_version}_{data_hash[:8]}.html"
    return _SAFE.sub("_", name)


def month_timestamp(month: Month) -> dt.datetime:
    """The first day of a month (the snapshot's time in the Evidently UI)."""
    return dt.datetime(month.year, month.number, 1)


def measured_text(result: CheckResult) -> str:
    """Which test ran, on how many rows (sampled or not), with which threshold."""
    lines = [
        f"- Persona fit: every row, current {result.n_current}, reference {result.n_reference}."
    ]
    drift = result.drift
    if drift is not None:
        lines.append(
            f"- Drift test: {result.params.get('stattest', 'ks')} per feature, drift when p < "
            f"{result.params.get('feature_threshold')}; drifted share {drift.drift_share:.2f}."
        )
        lines.append(
            f"- Rows tested: current {drift.n_current_used} of {drift.n_current}, "
            f"reference {drift.n_reference_used} of {drift.n_reference}"
            + (" (seeded samples)." if drift.sampled else " (all rows).")
        )
    else:
        lines.append("- Drift test: not run (too few rows in the current month).")
    return "\n".join(lines)


def persona_metrics(
    result: CheckResult,
    decision: Decision,
    month: Month,
    reference_months: Window,
    rules: PolicySettings | None,
) -> list[Any]:
    """The persona-fit section as Evidently custom metrics with their widgets.

    Args:
        result: The check result.
        decision: The verdict and reasons.
        month: Current month.
        reference_months: Reference window.
        rules: The decision thresholds shown next to the values (None: shown as None).

    Returns:
        `PersonaFitValue` metrics, the verdict first.
    """
    from persona.monitoring import evidently_fit as ef

    fit = result.fit
    drift = result.drift
    widgets = ef.verdict_widgets(decision.verdict, decision.reasons, month, reference_months)
    widgets.append(ef.summary_widget(fit, drift, result.params, rules))
    moved = {t.persona for t in decision.fired if t.kind == "shift" and t.persona is not None}
    shifts = ef.shift_widget(fit, rules, moved)
    widgets += [w for w in (ef.mix_widget(fit), shifts) if w is not None]
    widgets.append(ef.text_widget(title="How it was measured", text=measured_text(result)))
    # The verdict as one series per word (1.0 for the month's verdict, else 0.0): the
    # dashboard stacks them, so each month's bar is named by its verdict, not a code. The
    # first carries the report's widgets (shown once).
    verdict: list[Any] = []
    for word in VERDICTS:
        value = float(word == decision.verdict)
        shown = None if verdict else widgets
        verdict.append(ef.fit_value(f"verdict_{word}", f"Verdict: {word}", value, None, shown))
    return [
        *verdict,
        ef.fit_value(
            "drift_share",
            "Drifted-feature share",
            drift.drift_share if drift is not None else None,
        ),
        ef.fit_value(
            "unassigned_rate",
            "Unassigned rate",
            fit.unassigned_rate if fit else None,
            fit.reference_unassigned_rate if fit else None,
        ),
        ef.fit_value(
            "distance_ratio", "Mean distance / reference", fit.distance_ratio if fit else None
        ),
        ef.fit_value("mix_psi", "Persona-mix PSI", fit.mix.psi if fit else None),
        ef.fit_value(
            "max_centroid_shift",
            "Largest centroid shift (std)",
            fit.max_centroid_shift if fit else None,
        ),
    ]


def _reword_drift_headline(widgets: list[Any], decision: Decision) -> None:
    """Turn Evidently's "Dataset Drift is (NOT) detected" into what it is: one input."""
    for widget in widgets:
        params = getattr(widget, "params", None)
        if isinstance(params, dict):
            for item in params.get("counters") or []:
                if isinstance(item, dict) and str(item.get("label", "")).startswith(DRIFT_HEADLINE):
                    share = str(item["label"]).split("threshold is", 1)[-1].strip(" .")
                    item["value"] = "Feature drift: one input of the verdict"
                    item["label"] = (
                        f"Evidently's dataset-level rule alone (drifted-feature share >= "
                        f"{share}) is not the verdict; the verdict above is {decision.verdict}"
                    )
        _reword_drift_headline(list(getattr(widget, "widgets", None) or []), decision)


def build_snapshot(
    result: CheckResult,
    decision: Decision,
    month: Month,
    reference_months: Window,
    rules: PolicySettings | None,
    metadata: dict[str, str] | None = None,
) -> Any:
    """One Evidently snapshot of the check: persona fit and verdict, then feature drift.

    Args:
        result: The check result (its drift snapshot, if any, is included).
        decision: The verdict and reasons.
        month: Current month (the snapshot's timestamp is its first day).
        reference_months: Reference window.
        rules: The decision thresholds shown in the report (None: shown as None).
        metadata: Extra snapshot metadata (model version, data hash...).

    Returns:
        An `evidently.core.report.Snapshot`.
    """
    import pandas as pd
    from evidently import Dataset, Report
    from evidently.core.report import Snapshot
    from evidently.core.serialization import ReportModel, SnapshotModel

    counts = pd.DataFrame({"rows": [result.n_current]})
    refs = pd.DataFrame({"rows": [result.n_reference]})
    persona = Report(persona_metrics(result, decision, month, reference_months, rules)).run(
        Dataset.from_pandas(counts), Dataset.from_pandas(refs)
    )
    parts = [persona.to_snapshot_model()]
    if result.drift is not None and result.drift.snapshot is not None:
        parts.append(result.drift.snapshot.to_snapshot_model())
    widgets = [w for part in parts for w in part.widgets]
    _reword_drift_headline(widgets, decision)
    model = SnapshotModel(
        report=ReportModel(items=[]),
        name=f"{month} vs {', '.join(reference_months)}: {decision.verdict}",
        timestamp=month_timestamp(month),
        metadata={
            "month": month,
            "reference_months": str(reference_months),
            "verdict": decision.verdict,
            **(metadata or {}),
        },
        tags=[decision.verdict],
        metric_results={k: v for part in parts for k, v in part.metric_results.items()},
        top_level_metrics=[m for part in parts for m in part.top_level_metrics],
        widgets=widgets,
        tests_widgets=[w for part in parts for w in part.tests_widgets],
    )
    return Snapshot.load_model(model)


def write_report(
    result: CheckResult,
    decision: Decision,
    month: Month,
    reference_months: Window,
    path: Path,
    *,
    rules: PolicySettings | None = None,
    metadata: dict[str, str] | None = None,
    on_snapshot: Callable[[Any], object] | None = None,
) -> Path | None:
    """Write the check's Evidently HTML report; None when no drift test ran.

    Args:
        result: The check result.
        decision: The verdict and reasons (the report's headline).
        month: Current month.
        reference_months: Reference window.
        path: Where to write.
        rules: The decision thresholds shown next to the values (None: shown as None).
        metadata: Extra snapshot metadata.
        on_snapshot: Called with the snapshot (e.g. to add it to the Evidently workspace).

    Returns:
        The path written, or None when there was nothing to report.
    """
    if result.drift is None or result.drift.snapshot is None:
        return None  # no drift test ran (too few rows): the verdict says insufficient_data
    snapshot = build_snapshot(result, decision, month, reference_months, rules, metadata)
    page = snapshot.get_html_str(as_iframe=False)
    title = f"<title>PersonaOps check {month}: {decision.verdict}</title>"
    page = page.replace("<head>", "<head>" + title, 1) if "<head>" in page else page
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    if on_snapshot is not None:
        on_snapshot(snapshot)
    return path
