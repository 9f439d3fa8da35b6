"""Drift + persona-fit check of the month against the champion's reference window."""

from persona_pipeline.utils.persona_cli import month_vars, run_persona

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def check_drift(survey_month, *args, **kwargs):
    month, reference = month_vars(kwargs)
    cmd = ["monitor", "--month", month, "--alert"]
    cmd += ["--reference", reference] if reference else []
    result = run_persona(*cmd)
    result["preview_rows"] = len(survey_month)
    return result
