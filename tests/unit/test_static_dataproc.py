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


IAC = MODULE.parents[1]


def _root(name: str) -> dict[str, Any]:
    with (IAC / name).open() as handle:
        return _unquote(hcl2.load(handle))


def test_root_cluster_is_off_by_default_and_everything_it_adds_is_gated() -> None:
    """`terraform plan` of the bucket alone plans nothing of Dataproc (docs/dataproc.md)."""
    variables: dict[str, Any] = {}
    for block in _root("dataproc_variables.tf")["variable"]:
        variables.update(block)
    assert all(name.startswith("dataproc_") for name in variables)
    assert all(v.get("description") for v in variables.values())
    assert variables["dataproc_enabled"]["default"] is False
    tf = _root("dataproc.tf")
    modules = {name: body for block in tf["module"] for name, body in block.items()}
    assert modules["dataproc"]["source"] == "./modules/dataproc"
    gated = "${var.dataproc_enabled ? 1 : 0}"
    assert modules["dataproc"]["count"] == gated
    assert modules["dataproc"]["service_account_email"] == "${google_service_account.mlflow.email}"
    resources = [body for block in tf["resource"] for kind in block.values()
                 for body in kind.values()]  # fmt: skip
    assert resources and all(body["count"] == gated for body in resources)
    module_vars: dict[str, Any] = {}
    for block in _load("variables.tf")["variable"]:
        module_vars.update(block)
    required = {n for n, v in module_vars.items() if "default" not in v}
    assert required <= set(modules["dataproc"]), required - set(modules["dataproc"])
