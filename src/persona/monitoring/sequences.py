"""Month after month against one calibration: the false alarms and power users live with.

A fresh reference for every month (`evaluation`) hides what a reused reference does: one
unlucky 500-row calibration month alarms again and again. Here each sequence starts from
one seeded calibration month (the catalog model calibrated on it, as `persona model
bootstrap` does) and judges the following months in order against the reference the
platform would use: the grown baseline (`baseline.grown_reference`, from the verdicts of
the sequence so far), through the production `check` + `decide`. The direct path keeps the
champion after a ``retrain`` (it trains nothing); `04_monitoring/evaluate_policy.py
--default-path` runs sequences through `persona run-month` itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from persona.features import FEATURE_NAMES
from persona.model import from_catalog
from persona.monitoring.baseline import grown_reference
from persona.monitoring.check import check
from persona.monitoring.evaluation import calibrated_model, catalog_of, wilson
from persona.monitoring.policy import Decision, decide
from persona.months import Month, Window
from persona.settings import Settings
from persona.synth import generate_month, new_segment_centroid

CALIBRATION = Month("2024-01")
ROWS = 500


@dataclass(frozen=True)
class Step:
    """One month of a sequence: the scenario it is drawn from.

    Attributes:
        scenario: `synth` scenario.
        params: `generate_month` parameters.
    """

    scenario: str = "stable"
    params: tuple[tuple[str, Any], ...] = ()


STABLE = Step()


def _x(settings: Settings, month: Month, step: Step, seed: int, rows: int) -> np.ndarray:
    frame, _ = generate_month(
        catalog_of(settings), month, rows, step.scenario, seed=seed, **dict(step.params)
    )
    return frame[list(FEATURE_NAMES)].to_numpy()


def run_sequence(
    settings: Settings, seed: int, steps: Sequence[Step], rows: int = ROWS
) -> list[Decision]:
    """Judge the months of one sequence in order against the grown baseline.

    Args:
        settings: Thresholds and `BASELINE_MAX_MONTHS`.
        seed: Seed of the calibration month and of every month after it.
        steps: What each month after the calibration month is drawn from.
        rows: Rows per month (the calibration month too).

    Returns:
        The decision of every month, in order.
    """
    data = {CALIBRATION: _x(settings, CALIBRATION, STABLE, seed, rows)}
    model = calibrated_model(settings, data[CALIBRATION])
    training, verdicts = Window.of([CALIBRATION]), dict[str, str]()
    floor, policy = 1.0 - settings.radius_quantile, settings.policy
    out = []
    for i, step in enumerate(steps, start=1):
        month = CALIBRATION.add(i)
        data[month] = _x(settings, month, step, seed, rows)
        refs = grown_reference(training, verdicts, month, settings.baseline_max_months)
        ref_x = np.vstack([data[m] for m in refs])
        result = check(
            data[month], ref_x, model, policy, seed=seed, unassigned_floor=floor, evidently=False
        )
        decision = decide(result, policy)
        verdicts[month] = decision.verdict
        out.append(decision)
    return out


def alarm_counts(decisions: Sequence[Decision]) -> Counter[str]:
    """Verdicts of one sequence, counted."""
    return alarm_counts_of([d.verdict for d in decisions])


def alarm_counts_of(verdicts: Sequence[str]) -> Counter[str]:
    """Verdicts counted (``retrain`` and ``watch`` always present)."""
    return Counter({"retrain": 0, "watch": 0, **Counter(verdicts)})


def stable_summary(per_sequence: Sequence[Counter[str]]) -> dict[str, Any]:
    """The distribution of alarms per stable sequence, not only its mean.

    Args:
        per_sequence: `alarm_counts` of each sequence.

    Returns:
        ``sequences``, ``months``, histograms of ``retrain`` and ``retrain + watch`` per
        sequence, their means, the 95th percentile of alarms, the share of sequences with
        at most 3 alarms, the worst sequence (its index and counts), and the targets.
    """
    retrain = [c["retrain"] for c in per_sequence]
    alarms = [c["retrain"] + c["watch"] for c in per_sequence]
    worst = int(np.argmax(alarms))
    at_most_3 = float(np.mean([a <= 3 for a in alarms]))
    return {
        "sequences": len(per_sequence),
        "months": int(sum(sum(c.values()) for c in per_sequence) / max(len(per_sequence), 1)),
        "retrain_histogram": dict(sorted(Counter(retrain).items())),
        "alarm_histogram": dict(sorted(Counter(alarms).items())),
        "retrain_mean": float(np.mean(retrain)),
        "alarm_mean": float(np.mean(alarms)),
        "alarm_p95": float(np.quantile(alarms, 0.95)),
        "share_at_most_3_alarms": at_most_3,
        "max_retrain": max(retrain),
        "worst": {"sequence": worst, **dict(per_sequence[worst])},
        "targets": [
            {"target": "retrain <= 1 in every sequence", "met": max(retrain) <= 1},
            {"target": "retrain+watch <= 3 in >= 95% of sequences", "met": at_most_3 >= 0.95},
        ],
    }


def names_nearest_change(reason: str, persona: str | None) -> bool:
    """Whether a reason claims that `persona` moved or spread (or one of its answers)."""
    if persona is None:
        return False
    pattern = rf"(^persona {re.escape(persona)} (moved|spread))|(of persona {re.escape(persona)} )"
    return re.search(pattern, reason) is not None


def segment_summary(decisions: Sequence[tuple[Decision, str | None]]) -> dict[str, Any]:
    """How the alerts of months with a new segment read.

    Args:
        decisions: Per segment month, its decision and the persona nearest to the segment.

    Returns:
        ``months``, ``retrain`` share, the share whose first reason names the new segment,
        the months where a reason blames the nearest persona, and the targets.
    """
    months = len(decisions)
    retrain = sum(d.verdict == "retrain" for d, _ in decisions)
    first = sum(bool(d.reasons) and d.reasons[0].startswith("new segment") for d, _ in decisions)
    blamed = sum(any(names_nearest_change(r, p) for r in d.reasons) for d, p in decisions)
    return {
        "months": months,
        "retrain": retrain / months,
        "first_reason_new_segment": first / months,
        "nearest_blamed": blamed,
        "targets": [
            {"target": "first reason names the new segment >= 95%", "met": first >= 0.95 * months},
            {"target": "no reason says the nearest persona moved or spread", "met": blamed == 0},
        ],
    }


def nearest_persona(settings: Settings, seed: int) -> str:
    """The catalog persona nearest to the seeded new segment (`synth.new_segment_centroid`)."""
    catalog = catalog_of(settings)
    model = from_catalog(catalog)
    centre = new_segment_centroid(catalog, seed)[None, :]
    return str(model.predict(centre).nearest_id[0])


MIX_45 = Step("mix", (("shares", (0.45, 0.30, 0.25)),))


def stable_sequences(settings: Settings, calibrations: int, months: int = 40) -> dict[str, Any]:
    """`stable_summary` of `calibrations` stable sequences of `months` months (seeds 0..)."""
    counts = [
        alarm_counts(run_sequence(settings, s, [STABLE] * months)) for s in range(calibrations)
    ]
    return stable_summary(counts)


def mix_in_fourth_month(settings: Settings, calibrations: int) -> dict[str, Any]:
    """Mix 45/30/25 in the 4th month after the calibration: the share judged ``watch``."""
    verdicts = Counter(
        run_sequence(settings, s, [STABLE, STABLE, STABLE, MIX_45])[-1].verdict
        for s in range(calibrations)
    )
    watch = verdicts["watch"]
    return {
        "sequences": calibrations,
        "verdicts": dict(verdicts),
        "watch": watch / calibrations,
        "watch_ci": wilson(watch, calibrations),
        "targets": [{"target": "watch >= 95%", "met": watch >= 0.95 * calibrations}],
    }


def segment_sequences(
    settings: Settings, calibrations: int, share: float = 0.15, stable: int = 2, months: int = 4
) -> dict[str, Any]:
    """A new segment of `share` appears after `stable` months and stays `months` months."""
    segment = Step("new_segment", (("new_share", share),))
    judged = []
    for s in range(calibrations):
        decisions = run_sequence(settings, s, [STABLE] * stable + [segment] * months)
        nearest = nearest_persona(settings, s)
        judged += [(d, nearest) for d in decisions[stable:]]
    return {"share": share, **segment_summary(judged)}


def evaluate_sequences(
    settings: Settings,
    stable: int = 60,
    months: int = 40,
    mix: int = 200,
    segment: int = 50,
) -> dict[str, Any]:
    """The sequence figures of the evaluation (direct path); a count of 0 skips one."""
    out: dict[str, Any] = {"baseline_max_months": settings.baseline_max_months}
    if stable:
        out["stable"] = stable_sequences(settings, stable, months)
    if mix:
        out["mix_45_30_25_fourth_month"] = mix_in_fourth_month(settings, mix)
    if segment:
        out["new_segment_15"] = segment_sequences(settings, segment)
    out["met"] = all(t["met"] for v in out.values() if isinstance(v, dict) for t in v["targets"])
    return out


def _targets(entry: dict[str, Any]) -> str:
    return "; ".join(f"{t['target']}: {'met' if t['met'] else 'NOT MET'}" for t in entry["targets"])


def render_sequences(result: dict[str, Any]) -> str:
    """The sequence figures as Markdown lines."""
    lines = [f"Sequences against the grown baseline (BASELINE_MAX_MONTHS="
             f"{result['baseline_max_months']}), direct path:"]  # fmt: skip
    if "stable" in result:
        s = result["stable"]
        lines.append(
            f"- stable: {s['sequences']} calibration months x {s['months']} months: retrain "
            f"per sequence {s['retrain_histogram']} (max {s['max_retrain']}); retrain+watch "
            f"per sequence {s['alarm_histogram']} (mean {s['alarm_mean']:.2f}, 95th "
            f"percentile {s['alarm_p95']:g}, <= 3 in {s['share_at_most_3_alarms']:.1%}); "
            f"worst: {s['worst']}. {_targets(s)}"
        )
    if "mix_45_30_25_fourth_month" in result:
        m = result["mix_45_30_25_fourth_month"]
        low, high = m["watch_ci"]
        lines.append(
            f"- mix 45/30/25 in the 4th month after a 500-row calibration: watch "
            f"{m['watch']:.1%} [{low:.1%}, {high:.1%}] of {m['sequences']} ({m['verdicts']}). "
            f"{_targets(m)}"
        )
    if "new_segment_15" in result:
        g = result["new_segment_15"]
        lines.append(
            f"- new segment {g['share']:.0%} for 4 months after 2 stable months: "
            f"{g['months']} months, retrain {g['retrain']:.1%}, first reason names the new "
            f"segment {g['first_reason_new_segment']:.1%}, months blaming the nearest persona "
            f"{g['nearest_blamed']}. {_targets(g)}"
        )
    return "\n".join(lines)
