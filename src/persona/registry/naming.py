"""Names a person gives to personas (e.g. a discovered ``candidate-N``), kept in the registry.

A name is a tag ``persona_name.<persona id>`` on the registered model `MODEL_NAME`, so it
belongs to the model, not to one version: every later retrain reads the tags and the
aligned persona keeps the given name (`training.align(..., names=...)`).
"""

from __future__ import annotations

import re

from mlflow.exceptions import MlflowException

from persona.errors import RegistryError
from persona.registry.tracking import client, configure
from persona.registry.versions import CHALLENGER, CHAMPION, version_by_alias
from persona.settings import Settings

TAG_PREFIX = "persona_name."
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME_CHARS = 80


def given_names(settings: Settings) -> dict[str, str]:
    """Persona id -> name given by a person (empty when none or no registered model)."""
    try:
        model = client(settings).get_registered_model(settings.model_name)
    except MlflowException:
        return {}
    return {
        key[len(TAG_PREFIX) :]: value
        for key, value in (model.tags or {}).items()
        if key.startswith(TAG_PREFIX)
    }


def name_persona(settings: Settings, persona_id: str, name: str) -> dict[str, str]:
    """Give a persona of the champion or the challenger a display name.

    Args:
        settings: The settings (MLflow, model name).
        persona_id: A persona id of the champion or challenger, e.g. ``candidate-1``.
        name: The display name, e.g. ``"Thrifty Tina"``.

    Returns:
        ``{"persona_id", "name"}``.

    Raises:
        RegistryError: Unknown persona id, empty or too long a name, no registered model.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or "\n" in name:
        raise RegistryError(f"persona name must be 1-{MAX_NAME_CHARS} characters on one line")
    if not _SLUG.match(persona_id):
        raise RegistryError(f"persona id {persona_id!r} is not a slug (a-z, 0-9, '-')")
    configure(settings)
    mlc = client(settings)
    known: set[str] = set()
    for alias in (CHAMPION, CHALLENGER):
        mv = version_by_alias(mlc, settings.model_name, alias)
        if mv is not None:
            known.update(p for p in mv.tags.get("personas", "").split(",") if p)
    if persona_id not in known:
        raise RegistryError(
            f"persona {persona_id!r} is not in the champion or challenger of "
            f"{settings.model_name!r}: expected one of {sorted(known)}"
        )
    mlc.set_registered_model_tag(settings.model_name, TAG_PREFIX + persona_id, name)
    return {"persona_id": persona_id, "name": name}
