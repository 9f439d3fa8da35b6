"""Persona fit and the verdict as Evidently custom metrics, with their report widgets.

Evidently knows per-feature drift; it does not know personas. `PersonaFitValue` is an
Evidently metric (``evidently:metric_v2:PersonaFitValue``) whose value the check already
measured: the verdict code, the drifted-feature share, the unassigned rate, the persona-mix
PSI, the largest centroid shift, the distance ratio. As Evidently metrics they are stored in
the snapshot, plotted month over month by the Evidently UI dashboard (`workspace`), and
rendered in the HTML report by the widgets built here: the verdict with its reasons, the
persona mix (reference vs current) as a chart, and the per-persona centroid-shift table.

A metric's parameters (``key``, ``title``) identify its series; the value itself is handed
over privately, so months with different values stay one series.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from evidently._pydantic_compat import PrivateAttr
from evidently.core.metric_types import SingleValueCalculation, SingleValueMetric
from evidently.legacy.model.widget import BaseWidgetInfo
from evidently.legacy.renderers.html_widgets import (
    CounterData,
    WidgetSize,
    counter,
    plotly_figure,
    table_data,
    text_widget,
)

from persona.monitoring.results import PersonaFit
from persona.months import Month, Window
from persona.settings import PolicySettings

METRIC_TYPE = "evidently:metric_v2:PersonaFitValue"
VERDICT_TITLE = {
    "no_drift": "No drift: the personas fit",
    "watch": "Watch: something moved, no retrain",
    "retrain": "Retrain: the personas no longer fit",
    "insufficient_data": "Insufficient data: no verdict",
}


class PersonaFitValue(SingleValueMetric):
    """One persona-fit number (or the verdict code) of a monthly check, as an Evidently metric.

    Attributes:
        key: Stable id of the series (``unassigned_rate``, ``mix_psi``, ``verdict_code``...).
        title: What the number is, for people.
    """

    class Config:
        """Evidently's registry name of the metric (also the dashboards' metric id)."""

        type_alias = METRIC_TYPE

    key: str
    title: str
    _values: tuple[float | None, float | None] = PrivateAttr(default=(None, None))
    _widgets: list[BaseWidgetInfo] = PrivateAttr(default_factory=list)

    def _default_tests(self, context: Any) -> list[Any]:
        return []

    def _default_tests_with_reference(self, context: Any) -> list[Any]:
        return []


class PersonaFitValueCalculation(SingleValueCalculation[PersonaFitValue]):
    """Returns the value the check measured, with the widgets given to the metric."""

    def calculate(self, context: Any, current_data: Any, reference_data: Any) -> Any:
        """Return (current, reference) results; the report shows the metric's own widgets."""
        current, reference = self.metric._values
        result = self.result(current if current is not None else float("nan"))
        result.widget = list(self.metric._widgets)
        ref = None
        if reference is not None:
            ref = self.result(reference)
            ref.widget = []
        return result, ref

    def display_name(self) -> str:
        """The metric's title."""
        return self.metric.title


def fit_value(
    key: str,
    title: str,
    current: float | None,
    reference: float | None = None,
    widgets: list[BaseWidgetInfo] | None = None,
) -> PersonaFitValue:
    """Build a `PersonaFitValue` holding a measured value and the widgets that show it.

    Args:
        key: Series id.
        title: Display name.
        current: The month's value (None: not measured).
        reference: The reference window's value, if any.
        widgets: What the report shows for it (none: nothing, the value is in the dashboard).

    Returns:
        The metric, ready for an Evidently `Report`.
    """
    metric = PersonaFitValue(key=key, title=title)
    object.__setattr__(metric, "_values", (current, reference))
    object.__setattr__(metric, "_widgets", list(widgets or []))
    return metric


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def _num(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def verdict_widgets(
    verdict: str, reasons: list[str], month: Month, references: Window
) -> list[BaseWidgetInfo]:
    """The report's headline: the verdict and every reason behind it."""
    refs = ", ".join(references)
    head = counter(
        counters=[CounterData(VERDICT_TITLE.get(verdict, verdict), f"Verdict: {verdict}")],
        title=f"PersonaOps monthly check: {month} vs reference {refs}",
    )
    lines = "\n".join(f"- {reason}" for reason in reasons) or "- (no reason recorded)"
    return [head, text_widget(title="Why", text=lines)]


def summary_widget(
    fit: PersonaFit | None, drift: Any, params: dict[str, Any], rules: PolicySettings | None
) -> BaseWidgetInfo:
    """Counters: drifted features, unassigned rate, distance ratio, mix PSI, largest shift."""
    counters = []
    if drift is not None:
        drifted = sum(bool(f.drifted) for f in drift.features)
        counters.append(
            CounterData(
                f"Drifted features (marginal K-S p < {params.get('feature_threshold')}; "
                "information, not a rule)",
                f"{drifted} of {len(drift.features)} ({drift.drift_share:.2f})",
            )
        )
    counters.append(
        CounterData(
            f"Unassigned rate, reference {_pct(fit.reference_unassigned_rate if fit else None)} "
            f"(retrain: binomial test, excess >= "
            f"{_pct(rules.unassigned_min_effect if rules else None)})",
            _pct(fit.unassigned_rate if fit else None),
        )
    )
    counters.append(
        CounterData(
            "Mean distance vs reference (a persona's spread retrains from "
            f"{rules.distance_ratio_retrain if rules else None}x)",
            _num(fit.distance_ratio if fit else None, "{:.2f}x"),
        )
    )
    counters.append(
        CounterData(
            f"Persona-mix PSI (watch at {rules.psi_watch if rules else None} with chi-square "
            f"p < {rules.mix_alpha if rules else None}; a mix change alone never retrains)",
            _num(fit.mix.psi if fit else None),
        )
    )
    worst = fit.max_centroid_shift_persona if fit else None
    counters.append(
        CounterData(
            "Largest centroid shift, reference std"
            + (f" ({worst})" if worst else "")
            + f" (retrain from {rules.centroid_shift_retrain if rules else None}, Holm)",
            _num(fit.max_centroid_shift if fit else None, "{:.2f}"),
        )
    )
    return counter(counters=counters, title="Persona fit of the month")


def mix_widget(fit: PersonaFit | None) -> BaseWidgetInfo | None:
    """Grouped bar chart of the persona shares, reference vs current (unassigned included)."""
    if fit is None or not fit.mix.bins:
        return None
    mix = fit.mix
    bins = list(mix.bins)
    ref = [float(mix.reference_shares.get(b, 0.0)) for b in bins]
    cur = [float(mix.current_shares.get(b, 0.0)) for b in bins]
    figure = go.Figure(
        data=[
            go.Bar(name="reference", x=bins, y=ref, marker_color="#4d4d4d"),
            go.Bar(name="current", x=bins, y=cur, marker_color="#ed0400"),
        ]
    )
    figure.update_layout(
        barmode="group", yaxis={"title": "share of respondents", "tickformat": ".0%"}
    )
    title = f"Persona mix: reference vs current (PSI {_num(mix.psi)}"
    title += f", chi-square p={mix.chi2_pvalue:.2g})"
    return plotly_figure(title=title, figure=figure, size=WidgetSize.FULL)


def shift_widget(
    fit: PersonaFit | None, rules: PolicySettings | None, moved_ids: set[str] | None = None
) -> BaseWidgetInfo | None:
    """Table: per persona, the centroid shift in std, its p-value and row counts.

    ``moved`` is the decision's own: a persona whose ``shift`` test fired (Holm over every
    persona-fit test, with the minimum effect); without `moved_ids`, shift >= the minimum
    and p < alpha.
    """
    shifts = fit.centroid_shift if fit is not None else {}
    if not shifts:
        return None
    limit = rules.centroid_shift_retrain if rules else None
    alpha = rules.persona_fit_alpha if rules else None
    rows = []
    for pid, entry in shifts.items():
        shift, pvalue = entry.shift, entry.pvalue
        moved = (
            (pid in moved_ids)
            if moved_ids is not None
            else (
                shift is not None
                and pvalue is not None
                and limit is not None
                and alpha is not None
                and shift >= limit
                and pvalue < alpha
            )
        )
        rows.append(
            [
                pid,
                _num(shift, "{:.2f}"),
                "-" if pvalue is None else f"{pvalue:.2g}",
                str(entry.n_current),
                str(entry.n_reference),
                "moved" if moved else ("too few rows" if shift is None else "no"),
            ]
        )
    return table_data(
        title=f"Centroid shift per persona (pooled std; moved when >= {limit} and rejected "
        f"by Holm at {alpha})",
        column_names=[
            "persona",
            "shift (std)",
            "p-value",
            "rows current",
            "rows reference",
            "moved",
        ],
        data=rows,
        size=WidgetSize.FULL,
    )
