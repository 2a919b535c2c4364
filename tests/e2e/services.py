"""Drives the realcloud kit's Neutron, Cinder, Ironic and Heat through their own APIs.

keystoneauth1 adapters with the kit's admin (project-scoped; Ironic
system-scoped, as its policy wants), every call waiting for the state it
asks for, and each service's own listing for comparison with what the
synchronizer says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from keystoneauth1 import adapter, session
from keystoneauth1.identity import v3

CINDER_VERSION = "3.63"
IRONIC_VERSION = "1.65"
OTHER_VOLUME_TYPE = "e2e-other"


def _wait(what: str, probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {value!r}")
        time.sleep(0.3)


class Services:
    """The four services of the kit, as an operator's scripts would drive them."""

    def __init__(self, env: dict[str, str]) -> None:
        creds = {
            "auth_url": env["OS_AUTH_URL"],
            "username": env["OS_USERNAME"],
            "password": env["OS_PASSWORD"],
            "user_domain_id": env["OS_USER_DOMAIN_ID"],
        }
        project = v3.Password(
            project_name=env["OS_PROJECT_NAME"],
            project_domain_id=env["OS_PROJECT_DOMAIN_ID"],
            **creds,
        )
        system = v3.Password(system_scope="all", **creds)
        region = env["OS_REGION_NAME"]
        self.project_session = session.Session(auth=project)

        def api(auth: v3.Password, service_type: str, version: str | None = None):
            return adapter.Adapter(
                session.Session(auth=auth),
                service_type=service_type,
                interface="public",
                region_name=region,
                default_microversion=version,
            )

        self.neutron = api(project, "network")
        self.cinder = api(project, "block-storage", CINDER_VERSION)
        self.ironic = api(system, "baremetal", IRONIC_VERSION)
        self.heat = api(project, "orchestration")

    # -- Neutron ---------------------------------------------------------

    def network_create(self, name: str) -> str:
        body = {"network": {"name": name}}
        return self.neutron.post("/v2.0/networks", json=body).json()["network"]["id"]

    def network_update(self, key: str, **fields: Any) -> None:
        self.neutron.put(f"/v2.0/networks/{key}", json={"network": fields})

    def network_delete(self, key: str) -> None:
        self.neutron.delete(f"/v2.0/networks/{key}")

    def port_create(self, network: str, name: str) -> str:
        body = {"port": {"network_id": network, "name": name}}
        return self.neutron.post("/v2.0/ports", json=body).json()["port"]["id"]

    def port_update(self, key: str, **fields: Any) -> None:
        self.neutron.put(f"/v2.0/ports/{key}", json={"port": fields})

    def port_delete(self, key: str) -> None:
        self.neutron.delete(f"/v2.0/ports/{key}")

    # -- Cinder ----------------------------------------------------------

    def _volume(self, key: str) -> dict[str, Any] | None:
        resp = self.cinder.get(f"/volumes/{key}", raise_exc=False)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()["volume"]

    def _volume_settles(self, key: str, **want: Any) -> dict[str, Any]:
        def done(v: dict[str, Any] | None) -> bool:
            if v is not None and v["status"].startswith("error"):
                raise AssertionError(f"volume {key} went to {v['status']}")
            return v is not None and all(v.get(k) == w for k, w in want.items())

        return _wait(f"volume {key} {want}", lambda: self._volume(key), done)

    def volume_create(self, name: str, size: int = 1) -> str:
        body = {"volume": {"name": name, "size": size}}
        key = self.cinder.post("/volumes", json=body).json()["volume"]["id"]
        self._volume_settles(key, status="available")
        return key

    def volume_extend(self, key: str, size: int) -> None:
        self.cinder.post(f"/volumes/{key}/action", json={"os-extend": {"new_size": size}})
        self._volume_settles(key, status="available", size=size)

    def volume_retype(self, key: str, type_name: str = OTHER_VOLUME_TYPE) -> None:
        self.ensure_volume_type(type_name)
        body = {"os-retype": {"new_type": type_name, "migration_policy": "never"}}
        self.cinder.post(f"/volumes/{key}/action", json=body)
        self._volume_settles(key, status="available", volume_type=type_name)

    def ensure_volume_type(self, name: str) -> None:
        types = self.cinder.get("/types").json()["volume_types"]
        if not any(t["name"] == name for t in types):
            spec = {"volume_backend_name": "fake"}
            self.cinder.post("/types", json={"volume_type": {"name": name, "extra_specs": spec}})

    def volume_delete(self, key: str) -> None:
        self.cinder.delete(f"/volumes/{key}")
        _wait(f"volume {key} gone", lambda: self._volume(key), lambda v: v is None)

    # -- Ironic ----------------------------------------------------------

    def _node(self, key: str) -> dict[str, Any] | None:
        resp = self.ironic.get(f"/v1/nodes/{key}", raise_exc=False)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def node_create(self, name: str) -> str:
        body = {
            "driver": "fake-hardware",
            "name": name,
            "properties": {"cpus": 2, "memory_mb": 1024, "local_gb": 10},
        }
        return self.ironic.post("/v1/nodes", json=body).json()["uuid"]

    def node_move(self, key: str, verb: str, want: str) -> None:
        self.ironic.put(f"/v1/nodes/{key}/states/provision", json={"target": verb})
        _wait(
            f"node {key} {want}",
            lambda: self._node(key),
            lambda n: (
                n is not None
                and n["provision_state"] == want
                and n["target_provision_state"] is None
            ),
        )

    def node_delete(self, key: str) -> None:
        self.ironic.delete(f"/v1/nodes/{key}")
        _wait(f"node {key} gone", lambda: self._node(key), lambda n: n is None)

    # -- Heat ------------------------------------------------------------

    @staticmethod
    def template(count: int) -> dict[str, Any]:
        resources: dict[str, Any] = {"nothing": {"type": "OS::Heat::None"}}
        for k in range(count):
            resources[f"secret{k}"] = {
                "type": "OS::Heat::RandomString",
                "properties": {"length": 8},
            }
        return {"heat_template_version": "2018-08-31", "resources": resources}

    def _stack(self, key: str) -> dict[str, Any] | None:
        resp = self.heat.get(f"/stacks/{key}", raise_exc=False)
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()["stack"]

    def _stack_settles(self, key: str, want: str | None) -> None:
        def done(s: dict[str, Any] | None) -> bool:
            status = None if s is None else s["stack_status"]
            if status is not None and status.endswith("_FAILED"):
                raise AssertionError(f"stack {key} went to {status}")
            return status == want or (want is None and status == "DELETE_COMPLETE")

        _wait(f"stack {key} {want}", lambda: self._stack(key), done)

    def stack_create(self, name: str) -> str:
        body = {"stack_name": name, "template": self.template(1), "timeout_mins": 5}
        key = self.heat.post("/stacks", json=body).json()["stack"]["id"]
        self._stack_settles(key, "CREATE_COMPLETE")
        return key

    def stack_update(self, key: str, name: str) -> None:
        body = {"template": self.template(2), "timeout_mins": 5}
        self.heat.put(f"/stacks/{name}/{key}", json=body)
        self._stack_settles(key, "UPDATE_COMPLETE")

    def stack_delete(self, key: str) -> None:
        self.heat.delete(f"/stacks/{key}")
        self._stack_settles(key, None)

    # -- the services' own listings -----------------------------------------

    def listing(self, entity_type: str) -> dict[str, str | None]:
        """Key → state of every resource of the type, as the service lists it."""
        if entity_type == "neutron.network":
            records = self.neutron.get("/v2.0/networks").json()["networks"]
            return {r["id"]: r["status"] for r in records}
        if entity_type == "neutron.port":
            records = self.neutron.get("/v2.0/ports").json()["ports"]
            return {r["id"]: r["status"] for r in records}
        if entity_type == "cinder.volume":
            records = self.cinder.get("/volumes/detail?all_tenants=1").json()["volumes"]
            return {r["id"]: r["status"] for r in records}
        if entity_type == "ironic.node":
            records = self.ironic.get("/v1/nodes/detail").json()["nodes"]
            return {r["uuid"]: r["provision_state"] for r in records}
        if entity_type == "heat.stack":
            url = "/stacks?global_tenant=True&show_nested=True"
            records = self.heat.get(url).json()["stacks"]
            return {r["id"]: r["stack_status"] for r in records}
        raise KeyError(entity_type)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
