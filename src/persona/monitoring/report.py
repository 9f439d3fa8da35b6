"""The Evidently HTML report of a check, with a banner stating verdict, samples and test."""

from __future__ import annotations

import html
import re
from pathlib import Path

from persona.monitoring.check import CheckResult
from persona.monitoring.policy import Decision

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def report_name(month: str, reference_months: list[str], model_version: str, data_hash: str) -> str:
    """File name of a report: month, reference window, model version, data hash prefix.

    Args:
        month: Current month.
        reference_months: Reference window.
        model_version: Champion version that labelled the data.
        data_hash: Fingerprint of the check's data and parameters.

    Returns:
        E.g. ``drift_2025-03_ref-2025-01_v1_ab12cd34.html``.
    """
    refs = "+".join(sorted(reference_months))
    if len(reference_months) > 3:
        refs = f"{min(reference_months)}..{max(reference_months)}"
    name = f"drift_{month}_ref-{refs}_v{model_version}_{data_hash[:8]}.html"
    return _SAFE.sub("_", name)


def banner(result: CheckResult, decision: Decision, month: str, reference_months: list[str]) -> str:
    """HTML block shown above Evidently's widgets."""
    drift = result.drift
    lines = [
        f"<b>Month</b> {html.escape(month)} vs reference "
        f"{html.escape(', '.join(sorted(reference_months)))}",
        f"<b>Verdict</b> {html.escape(decision.verdict)}",
    ]
    lines += [f"&bull; {html.escape(reason)}" for reason in decision.reasons]
    if drift is not None:
        lines.append(
            f"<b>Drift test</b> K-S per feature, drift when p &lt; "
            f"{result.params.get('feature_threshold')}; drifted share {drift.drift_share:.2f}"
        )
        lines.append(
            f"<b>Rows tested</b> current {drift.n_current_used} of {drift.n_current}, "
            f"reference {drift.n_reference_used} of {drift.n_reference}"
            + (" (seeded samples)" if drift.sampled else " (all rows)")
        )
    body = "<br>".join(lines)
    return (
        '<div style="font-family:sans-serif;padding:12px;margin:8px;border:1px solid #999;'
        f'background:#f6f6f6">{body}</div>'
    )


def write_report(
    result: CheckResult,
    decision: Decision,
    month: str,
    reference_months: list[str],
    path: Path,
) -> Path | None:
    """Write the Evidently HTML report with the banner; None when no drift test ran.

    Args:
        result: The check result (its Evidently snapshot is rendered).
        decision: The decision (shown in the banner).
        month: Current month.
        reference_months: Reference window.
        path: Where to write.

    Returns:
        The path written, or None when the check had no Evidently snapshot.
    """
    if result.drift is None or result.drift.snapshot is None:
        return None
    page = result.drift.snapshot.get_html_str(as_iframe=False)
    block = banner(result, decision, month, reference_months)
    match = re.search(r"<body[^>]*>", page)
    page = page[: match.end()] + block + page[match.end() :] if match else block + page
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
