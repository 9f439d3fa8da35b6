"""A smaller run of 04_monitoring/evaluate_policy.py: the policy's targets on seeded months."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from persona.monitoring import evaluation
from persona.settings import Settings


@pytest.mark.slow
def test_policy_meets_its_targets_on_8_seeded_months(
    make_settings: Callable[..., Settings],
) -> None:
    script = evaluation
    result = script.evaluate(make_settings(), runs=8, rows=500)
    rates = {name: row["rates"] for name, row in result["scenarios"].items()}
    assert rates["stable"]["retrain"] == 0.0
    for scenario in ("spread", "shift", "new_segment", "mix"):
        assert rates[scenario]["retrain"] == 1.0, (scenario, rates[scenario])
    table = script.render(result)
    assert "| stable |" in table and "NO" not in table


def test_evaluate_policy_script_prints_the_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "04_monitoring" / "evaluate_policy.py"
    out = tmp_path / "eval.json"
    proc = subprocess.run(
        [sys.executable, str(script), "--runs", "1", "--rows", "200", "--scenarios",
         "stable,spread", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| stable |" in proc.stdout and "| spread |" in proc.stdout
    assert set(json.loads(out.read_text())["scenarios"]) == {"stable", "spread"}
