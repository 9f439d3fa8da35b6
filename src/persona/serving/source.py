"""Model sources of the API: the MLflow registry alias (default) or a local model folder.

Also the local cache of the last model a worker loaded (`FileModelCache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from persona.errors import ModelError
from persona.model import LoadedModel, model_from_dict, model_to_dict, read_model_folder
from persona.serving.holder import Loaded, ModelSource
from persona.settings import Settings


def local_source(path: str | Path, name: str = "local", version: str = "local") -> ModelSource:
    """A pinned source reading a local model folder once (no hot reload).

    Args:
        path: See `persona.model.read_model_folder` (no MLflow import).
        name: Name to report.
        version: Version to report.
    """

    def load() -> LoadedModel:
        return LoadedModel(read_model_folder(path), name, version, None, str(Path(path)))

    return ModelSource(
        load=load,
        target_version=lambda: None,
        description=f"local folder {path}",
    )


def registry_source(settings: Settings) -> ModelSource:
    """The default source: `MODEL_URI` if set (pinned), else `models:/{MODEL_NAME}@{MODEL_ALIAS}`.

    With `MODEL_URI` empty the holder follows the alias: every check asks the registry
    which version the alias points at and reloads when it moved.

    Args:
        settings: Settings (MLflow URIs, model name, alias, optional model URI).

    MLflow is imported on the first call, in the reload thread, so a worker starts (and
    answers `/health`) without waiting for it.
    """
    if settings.model_uri and not settings.model_uri.startswith(("models:/", "runs:/")):
        # A local folder: read it directly (no MLflow import, so the worker is ready at once).
        return local_source(settings.model_uri.removeprefix("file://"))
    if settings.model_uri:
        uri = settings.model_uri

        def load_pinned() -> Loaded:
            from persona import registry_read as registry

            return registry.load_model_for_serving(settings, uri=uri)

        return ModelSource(load_pinned, lambda: None, f"pinned {uri}")

    alias = settings.model_alias

    def load_alias() -> Loaded:
        from persona import registry_read as registry

        return registry.load_model_for_serving(settings)

    def target() -> str | None:
        from persona import registry_read as registry

        return registry.alias_version(settings, alias)

    return ModelSource(load_alias, target, f"models:/{settings.model_name}@{alias}")


log = logging.getLogger(__name__)


class FileModelCache:
    """The last model a worker loaded, as one JSON file (written atomically).

    Args:
        folder: Cache folder (`MODEL_CACHE_DIR`).
        key: What the model was loaded through (the source description); one file per key.
    """

    def __init__(self, folder: str | Path, key: str) -> None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.path = Path(folder) / f"model-{digest}.json"
        self.key = key

    def save(self, loaded: Loaded) -> None:
        """Keep `loaded`; a failure is logged, never raised (the cache is a convenience)."""
        document = {
            "key": self.key,
            "name": loaded.name,
            "version": loaded.version,
            "alias": loaded.alias,
            "uri": loaded.uri,
            "tags": dict(loaded.tags),
            "model": model_to_dict(loaded.model),
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".model-", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(tmp, self.path)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("cannot write the model cache %s: %s", self.path, exc)

    def load(self) -> LoadedModel | None:
        """The cached model, or None when there is none or it is unreadable (logged)."""
        if not self.path.is_file():
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("key") != self.key:
                return None
            model = model_from_dict(data["model"])
            return LoadedModel(
                model,
                str(data["name"]),
                str(data["version"]),
                data.get("alias"),
                f"cache {self.path} of {data.get('uri')}",
                dict(data.get("tags") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError, ModelError) as exc:
            log.warning("ignoring the unreadable model cache %s: %s", self.path, exc)
            return None
