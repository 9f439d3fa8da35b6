"""Follow the label branch when the check step chose it."""

from persona_pipeline.utils.persona_cli import on_label_branch

if "condition" not in globals():
    from mage_ai.data_preparation.decorators import condition


@condition
def evaluate_condition(check, *args, **kwargs) -> bool:
    return on_label_branch(check)
