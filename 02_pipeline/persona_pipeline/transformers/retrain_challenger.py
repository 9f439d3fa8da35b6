"""Step 2 (drift branch): train and register the challenger (`persona cycle retrain`)."""

from persona_pipeline.utils.persona_cli import run_step

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def retrain_challenger(check, *args, **kwargs):
    return run_step("retrain", after=check)
