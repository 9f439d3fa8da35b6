"""Registered model versions: register (all or nothing), aliases, lookup and loading."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from persona.errors import RegistryError
from persona.months import Window, parse_window
from persona.registry.results import RegisteredVersion
from persona.registry_read import _ALIAS_URI, _VERSION_URI, client, version_by_alias
from persona.registry_read import NAME_TAG as NAME_TAG
from persona.registry_read import alias_version as alias_version
from persona.registry_read import get_version as get_version
from persona.registry_read import given_on as given_on
from persona.registry_read import load_model_for_serving as load_model_for_serving
from persona.settings import Settings

MODEL_VERSIONS_TAG = "mlflow.modelVersions"  # mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS
CHAMPION = "champion"
CHALLENGER = "challenger"
log = logging.getLogger(__name__)


def clear_challenger(mlc: MlflowClient, name: str) -> bool:
    """Delete ``challenger``; a refusal is logged, never raised.

    Returns:
        Whether the alias was deleted.

    MLflow asks MANAGE to delete an alias: the governance identity has it, the pipeline's
    (EDIT) does not, so a cycle that finds the move first records it and leaves the alias
    to the governance receiver or a promoter.
    """
    try:
        mlc.delete_registered_model_alias(name, CHALLENGER)
    except MlflowException as exc:
        log.warning("cannot clear the challenger alias of %s: %s", name, exc.message)
        return False
    return True


def all_versions(mlc: MlflowClient, name: str) -> list[ModelVersion]:
    """Every version of a registered model, oldest first (empty when it does not exist)."""
    quoted = name.replace("'", "\\'")
    found = mlc.search_model_versions(f"name='{quoted}'")
    return sorted(found, key=lambda mv: int(mv.version))


def find_version(mlc: MlflowClient, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """The newest version whose tags include all of `tags` (idempotency look-up)."""
    for mv in reversed(all_versions(mlc, name)):
        if all(mv.tags.get(k) == v for k, v in tags.items()):
            return mlc.get_model_version(name, mv.version)  # search results lack aliases
    return None


def register(
    mlc: MlflowClient,
    name: str,
    model_info: Any,
    run_id: str,
    tags: dict[str, str],
    finish: Callable[[ModelVersion], None],
) -> ModelVersion:
    """Create a version and run `finish` on it (aliases, tags); delete it if anything fails.

    Raises:
        RegistryError: Registration failed; no version is left behind.
    """
    try:
        mlc.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise RegistryError(f"cannot create registered model {name!r}: {exc}") from exc
    try:
        mv = mlc.create_model_version(
            name, model_info.model_uri, run_id=run_id, tags=tags, model_id=model_info.model_id
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot register a version of {name!r}: {exc}") from exc
    try:
        finish(mv)
        if model_info.model_id:
            link_logged_model(mlc, model_info.model_id, name, str(mv.version))
    except BaseException:
        mlc.delete_model_version(name, mv.version)
        raise
    return mv


def link_logged_model(mlc: MlflowClient, model_id: str, name: str, version: str) -> None:
    """Record a version on its logged model, as `mlflow.register_model` does.

    The MLflow UI lists a logged model's versions (and calls it registered) from the
    logged model's ``mlflow.modelVersions`` tag; `create_model_version` alone leaves it
    unset.
    """
    model = mlc.get_logged_model(model_id)
    links = json.loads(model.tags.get(MODEL_VERSIONS_TAG) or "[]")
    entry = {"name": name, "version": version}
    if entry not in links:
        mlc.set_logged_model_tags(model_id, {MODEL_VERSIONS_TAG: json.dumps([*links, entry])})


def list_versions(settings: Settings) -> list[RegisteredVersion]:
    """Every version of `MODEL_NAME` with its aliases and tags, oldest first."""
    mlc = client(settings)
    versions = all_versions(mlc, settings.model_name)
    aliases: dict[str, list[str]] = {}
    if versions:
        for alias, number in mlc.get_registered_model(settings.model_name).aliases.items():
            aliases.setdefault(str(number), []).append(alias)
    return [
        RegisteredVersion(
            version=str(mv.version),
            aliases=tuple(sorted(aliases.get(str(mv.version), []))),
            created_at=mv.creation_timestamp,
            run_id=mv.run_id,
            source=mv.source,
            tags=dict(mv.tags),
        )
        for mv in versions
    ]


def champion_reference_months(settings: Settings) -> Window | None:
    """The months the champion was trained / calibrated on (its `training_months` tag)."""
    mv = version_by_alias(client(settings), settings.model_name, CHAMPION)
    if mv is None or not mv.tags.get("training_months"):
        return None
    return parse_window(mv.tags["training_months"])


def download_model(settings: Settings, uri: str, dst: str | Path) -> str:
    """Download a model from the settings' store into `dst`.

    `uri` is ``models:/NAME@ALIAS``, ``models:/NAME/N``, ``models:/<id>`` or an artifact
    URI. A ``models:/`` URI is resolved through the settings' client: MLflow itself resolves
    one with its process-wide default registry, whatever URI it is given.

    Returns:
        The local folder.

    Raises:
        RegistryError: Unknown model, version or alias; unreachable store.
    """
    store = settings.mlflow_tracking_uri
    mlc = client(settings)
    by_alias, by_version = _ALIAS_URI.match(uri), _VERSION_URI.match(uri)
    try:
        if by_alias:
            mv = version_by_alias(mlc, by_alias["name"], by_alias["alias"])
            if mv is None:
                raise RegistryError(f"no version of {by_alias['name']!r} has alias {uri!r}")
            uri = mlc.get_model_version_download_uri(mv.name, str(mv.version))
        elif by_version:
            uri = mlc.get_model_version_download_uri(by_version["name"], by_version["version"])
        elif uri.startswith("models:/"):
            uri = mlc.get_logged_model(uri.removeprefix("models:/")).artifact_location
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=store
        )
    except MlflowException as exc:
        raise RegistryError(f"cannot download {uri}: {exc}") from exc
    return str(local)
