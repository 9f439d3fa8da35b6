"""Run the no-drift branch (label with the current champion) unless the check said `retrain`."""

from persona_pipeline.utils.persona_cli import verdict

if "condition" not in globals():
    from mage_ai.data_preparation.decorators import condition


@condition
def evaluate_condition(check, *args, **kwargs) -> bool:
    return verdict(check) != "retrain"
