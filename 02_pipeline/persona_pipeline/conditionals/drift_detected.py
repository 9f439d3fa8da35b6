"""Run the retrain branch only when the drift check decided `retrain`."""

from persona_pipeline.utils.persona_cli import verdict

if "condition" not in globals():
    from mage_ai.data_preparation.decorators import condition


@condition
def evaluate_condition(check, *args, **kwargs) -> bool:
    return verdict(check) == "retrain"
