"""Model sources of the API: the MLflow registry alias (default) or a local model folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persona.errors import ModelError
from persona.model import MODEL_JSON, PersonaModel, model_from_dict
from persona.serving.holder import Loaded, ModelSource
from persona.settings import Settings


@dataclass(frozen=True)
class LocalModel:
    """A model read from a folder outside the registry (offline use, tests).

    Attributes:
        model: The persona model.
        name: Name reported to clients.
        version: Version reported to clients.
        alias: Always None (no alias behind a folder).
        uri: The folder.
        tags: Free-form tags.
    """

    model: PersonaModel
    name: str
    version: str
    alias: str | None
    uri: str
    tags: dict[str, Any] = field(default_factory=dict)


def read_local_model(path: str | Path, name: str = "local", version: str = "local") -> LocalModel:
    """Read a model folder: an MLflow pyfunc dir (artifacts/persona_model.json) or the JSON.

    Args:
        path: A pyfunc model folder, a folder holding `persona_model.json`, or that file.
        name: Name to report.
        version: Version to report.

    Returns:
        The loaded model.

    Raises:
        ModelError: No model document was found or it is malformed.
    """
    root = Path(path)
    candidates = [root, root / MODEL_JSON, root / "artifacts" / MODEL_JSON]
    for candidate in candidates:
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ModelError(f"cannot read model document {candidate}: {exc}") from None
            return LocalModel(model_from_dict(data), name, version, None, str(root))
    raise ModelError(f"no {MODEL_JSON} under {root} (looked in {', '.join(map(str, candidates))})")


def local_source(path: str | Path, name: str = "local", version: str = "local") -> ModelSource:
    """A pinned source reading a local model folder once (no hot reload).

    Args:
        path: See `read_local_model`.
        name: Name to report.
        version: Version to report.
    """
    return ModelSource(
        load=lambda: read_local_model(path, name, version),
        target_version=lambda: None,
        description=f"local folder {path}",
    )


def registry_source(settings: Settings) -> ModelSource:
    """The default source: `MODEL_URI` if set (pinned), else `models:/{MODEL_NAME}@{MODEL_ALIAS}`.

    With `MODEL_URI` empty the holder follows the alias: every check asks the registry
    which version the alias points at and reloads when it moved.

    Args:
        settings: Settings (MLflow URIs, model name, alias, optional model URI).
    """
    from persona.registry import versions as registry

    if settings.model_uri:
        uri = settings.model_uri

        def load_pinned() -> Loaded:
            return registry.load_model_for_serving(settings, uri=uri)

        return ModelSource(load_pinned, lambda: None, f"pinned {uri}")

    alias = settings.model_alias

    def load_alias() -> Loaded:
        return registry.load_model_for_serving(settings)

    def target() -> str | None:
        return registry.alias_version(settings, alias)

    return ModelSource(load_alias, target, f"models:/{settings.model_name}@{alias}")


def champion_governance(settings: Settings) -> Callable[[], None] | None:
    """What the reload thread calls after a swap: govern champion moves made outside.

    Returns None (nothing to call) when `API_SYNC_CHAMPION` is off, the API serves a
    pinned `MODEL_URI`, or follows another alias than ``champion``.

    Args:
        settings: Settings (store, registry, alerts).
    """
    if not settings.api_sync_champion or settings.model_uri or settings.model_alias != "champion":
        return None

    def sync() -> None:
        from persona.registry.governance import sync_champion
        from persona.store.engine import open_store

        engine = open_store(settings.database_url)
        try:
            sync_champion(settings, engine)
        finally:
            engine.dispose()

    return sync
