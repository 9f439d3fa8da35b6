"""Drift branch: promote the challenger when its gates passed and AUTO_PROMOTE is on."""

import os

from persona_pipeline.utils.persona_cli import month_vars, run_persona

if "transformer" not in globals():
    from mage_ai.data_preparation.decorators import transformer


@transformer
def promote_challenger(challenger, *args, **kwargs):
    if challenger.get("skipped"):
        return {"skipped": True, "promoted": False}
    gates_passed = bool((challenger.get("gates") or {}).get("passed"))
    if not gates_passed or os.environ.get("AUTO_PROMOTE", "true").lower() in ("0", "false", "no"):
        return {
            "skipped": False,
            "promoted": False,
            "version": challenger["version"],
            "note": "left as challenger (gates failed or AUTO_PROMOTE off)",
        }
    month, _ = month_vars(kwargs)
    version = str(challenger["version"])
    result = run_persona("model", "promote", "--version", version, "--reason", f"drift in {month}")
    return {"skipped": False, **result}
