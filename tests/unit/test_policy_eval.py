"""A smaller run of 04_monitoring/evaluate_policy.py: the policy's targets on seeded months."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from persona.settings import Settings

SCRIPT = Path(__file__).resolve().parents[2] / "04_monitoring" / "evaluate_policy.py"


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("evaluate_policy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_policy_meets_its_targets_on_8_seeded_months(
    make_settings: Callable[..., Settings],
) -> None:
    script = _load_script()
    result = script.evaluate(make_settings(), runs=8, rows=500)
    rates = {name: row["rates"] for name, row in result["scenarios"].items()}
    assert rates["stable"]["retrain"] == 0.0
    for scenario in ("spread", "shift", "new_segment", "mix"):
        assert rates[scenario]["retrain"] == 1.0, (scenario, rates[scenario])
    table = script.render(result)
    assert "| stable |" in table and "NO" not in table
