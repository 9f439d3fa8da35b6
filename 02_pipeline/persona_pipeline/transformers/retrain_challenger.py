"""Drift branch: train + register a challenger on the window ending at the month."""

from persona_pipeline.utils.persona_cli import month_vars, run_persona, verdict

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def retrain_challenger(check, *args, **kwargs):
    # `mage run` does not evaluate conditionals: re-check the decision here.
    if verdict(check) != "retrain":
        return {"skipped": True, "verdict": verdict(check)}
    month, _ = month_vars(kwargs)
    result = run_persona(
        "model", "train", "--month", month, "--reason", f"drift in {month}", "--drift-demanded"
    )
    return {"skipped": False, "verdict": "retrain", **result}
