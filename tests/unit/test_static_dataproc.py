"""Static checks of the optional Dataproc module (05_iac/modules/dataproc); never applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2

from tests.unit.test_static_terraform import _unquote

MODULE = Path(__file__).resolve().parents[2] / "05_iac" / "modules" / "dataproc"


def _load(name: str) -> dict[str, Any]:
    with (MODULE / name).open() as handle:
        return _unquote(hcl2.load(handle))


def _cluster_config() -> dict[str, Any]:
    clusters: dict[str, Any] = {}
    for block in _load("main.tf")["resource"]:
        clusters.update(block.get("google_dataproc_cluster", {}))
    assert list(clusters) == ["spark"]
    config = clusters["spark"]["cluster_config"]
    return config[0] if isinstance(config, list) else config


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def test_cluster_is_ephemeral_private_and_runs_as_the_iac_service_account() -> None:
    config = _cluster_config()
    gce = _first(config["gce_cluster_config"])
    assert gce["service_account"] == "${var.service_account_email}"
    assert gce["internal_ip_only"] is True
    assert gce["metadata"]["PIP_PACKAGES"] == "${var.persona_wheel}"
    assert _first(config["lifecycle_config"])["idle_delete_ttl"] == "${var.idle_delete_ttl}"
    assert "pip-install.sh" in _first(config["initialization_action"])["script"]


def test_variables_have_descriptions_and_a_bounded_idle_ttl() -> None:
    variables: dict[str, Any] = {}
    for block in _load("variables.tf")["variable"]:
        variables.update(block)
    assert all(v.get("description") for v in variables.values())
    ttl = variables["idle_delete_ttl"]["default"]
    assert ttl.endswith("s") and 0 < int(ttl[:-1]) <= 4 * 3600
    assert (
        "service_account_email" in variables and "default" not in variables["service_account_email"]
    )
