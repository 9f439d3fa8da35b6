"""Names a person gives to personas (e.g. a discovered ``candidate-N``), kept in the registry.

A name is a tag ``persona_name.<persona id>`` on the registered model `MODEL_NAME`, so it
belongs to the model, not to one version: every later retrain reads the tags and the
aligned persona keeps the given name (`training.align(..., names=...)`). The same tag on
a version applies the name when that version loads (`versions.load_model_for_serving`),
so the versions already registered show it without a retrain.
"""

from __future__ import annotations

import re

from mlflow.exceptions import MlflowException

from persona.errors import RegistryError
from persona.registry.tracking import client, configure
from persona.registry.versions import (
    CHALLENGER,
    CHAMPION,
    NAME_TAG,
    get_version,
    given_on,
    version_by_alias,
)
from persona.settings import Settings

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME_CHARS = 80


def given_names(settings: Settings) -> dict[str, str]:
    """Persona id -> name given by a person (empty when none or no registered model)."""
    try:
        model = client(settings).get_registered_model(settings.model_name)
    except MlflowException:
        return {}
    return given_on(dict(model.tags or {}))


def _check(persona_id: str, name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or "\n" in name:
        raise RegistryError(f"persona name must be 1-{MAX_NAME_CHARS} characters on one line")
    if not _SLUG.match(persona_id):
        raise RegistryError(f"persona id {persona_id!r} is not a slug (a-z, 0-9, '-')")
    return name


def _personas(tags: dict[str, str]) -> set[str]:
    return {p for p in tags.get("personas", "").split(",") if p}


def name_persona(settings: Settings, persona_id: str, name: str) -> dict[str, str]:
    """Give a persona of the champion or the challenger a display name.

    The name is kept for later retrains and applies to the champion and challenger that
    hold the persona the next time they load.

    Args:
        settings: The settings (MLflow, model name).
        persona_id: A persona id of the champion or challenger, e.g. ``candidate-1``.
        name: The display name, e.g. ``"Thrifty Tina"``.

    Returns:
        ``{"persona_id", "name"}``.

    Raises:
        RegistryError: Unknown persona id, empty or too long a name, no registered model.
    """
    name = _check(persona_id, name)
    configure(settings)
    mlc = client(settings)
    holders = [
        mv
        for alias in (CHAMPION, CHALLENGER)
        if (mv := version_by_alias(mlc, settings.model_name, alias)) is not None
    ]
    known = set().union(*(_personas(dict(mv.tags)) for mv in holders))
    if persona_id not in known:
        raise RegistryError(
            f"persona {persona_id!r} is not in the champion or challenger of "
            f"{settings.model_name!r}: expected one of {sorted(known)}"
        )
    mlc.set_registered_model_tag(settings.model_name, NAME_TAG + persona_id, name)
    for mv in holders:
        if persona_id in _personas(dict(mv.tags)):
            mlc.set_model_version_tag(settings.model_name, mv.version, NAME_TAG + persona_id, name)
    return {"persona_id": persona_id, "name": name}


def name_version(settings: Settings, version: str, names: dict[str, str]) -> dict[str, str]:
    """Give personas of one version display names (the approve step of a review).

    The names are tags of the version (applied when it loads) and of the model (kept by
    later retrains).

    Returns:
        Persona id -> the name stored.

    Raises:
        RegistryError: Unknown version, a persona the version lacks, or a bad name.
    """
    configure(settings)
    mlc = client(settings)
    mv = get_version(mlc, settings.model_name, version)
    known = _personas(dict(mv.tags))
    checked = {pid: _check(pid, name) for pid, name in names.items()}
    unknown = sorted(set(checked) - known)
    if unknown:
        raise RegistryError(
            f"version {version} has no persona {', '.join(unknown)}: expected one of "
            f"{sorted(known)}"
        )
    for pid, name in checked.items():
        mlc.set_model_version_tag(settings.model_name, mv.version, NAME_TAG + pid, name)
        mlc.set_registered_model_tag(settings.model_name, NAME_TAG + pid, name)
    return checked
