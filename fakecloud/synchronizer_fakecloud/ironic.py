"""Fake Ironic (bare metal) at ``/baremetal``: the ``nodes`` kind.

``GET /baremetal/`` and ``/baremetal/v1/`` are unauthenticated; every
answer carries ``X-OpenStack-Ironic-API-Minimum-Version`` (1.1) and
``-Maximum-Version`` (1.96), and API answers echo the negotiated
``X-OpenStack-Ironic-API-Version`` (asked with that header or
``OpenStack-API-Version: baremetal X``; default 1.1, the minimum, which
hides most fields: clients should ask for a version). ``GET
/v1/nodes/detail`` pages by ``limit`` (at most 1000) and ``marker`` (a
node uuid) in creation order and adds a top-level ``next`` URL when a page
is full. Fields appear with the version that added them, e.g. ``name``
1.5, ``resource_class`` 1.21, ``traits`` 1.37, ``conductor_group`` 1.46,
``protected`` 1.48, ``conductor`` 1.49, ``owner`` 1.50, ``description``
1.51, ``allocation_uuid`` 1.52, ``retired`` 1.61, ``lessee`` 1.65.
Errors carry Ironic's JSON-in-a-string ``error_message``.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from synchronizer_fakecloud import clock, microversion
from synchronizer_fakecloud.service import ApiService
from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import (
    ApiError,
    Request,
    Response,
    encoded,
    json_list_body,
    json_response,
    limit_param,
    next_link,
    not_found,
    parse_bool,
    request_id,
)

MAX_LIMIT = 1000
MIN_VERSION, MAX_VERSION = (1, 1), (1, 96)
_LEGACY = "X-OpenStack-Ironic-API-Version"
_GATES: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = (
    ((1, 5), ("name",)),
    ((1, 6), ("inspection_started_at", "inspection_finished_at")),
    ((1, 7), ("clean_step",)),
    ((1, 12), ("raid_config", "target_raid_config")),
    ((1, 20), ("network_interface",)),
    ((1, 21), ("resource_class",)),
    ((1, 24), ("portgroups",)),
    (
        (1, 31),
        (
            "boot_interface",
            "console_interface",
            "deploy_interface",
            "inspect_interface",
            "management_interface",
            "power_interface",
            "raid_interface",
            "vendor_interface",
        ),
    ),
    ((1, 32), ("volume",)),
    ((1, 33), ("storage_interface",)),
    ((1, 37), ("traits",)),
    ((1, 38), ("rescue_interface",)),
    ((1, 40), ("bios_interface",)),
    ((1, 42), ("fault",)),
    ((1, 44), ("deploy_step",)),
    ((1, 46), ("conductor_group",)),
    ((1, 47), ("automated_clean",)),
    ((1, 48), ("protected", "protected_reason")),
    ((1, 49), ("conductor",)),
    ((1, 50), ("owner",)),
    ((1, 51), ("description",)),
    ((1, 52), ("allocation_uuid",)),
    ((1, 61), ("retired", "retired_reason")),
    ((1, 65), ("lessee",)),
    ((1, 66), ("network_data",)),
    ((1, 75), ("boot_mode", "secure_boot")),
    ((1, 82), ("shard",)),
    ((1, 83), ("parent_node",)),
    ((1, 86), ("firmware_interface",)),
)
_GATE_VERSIONS = [gate for gate, _ in _GATES]
_HIDDEN = [
    frozenset(k for _, keys in _GATES[shape:] for k in keys) for shape in range(len(_GATES) + 1)
]
_LINKED = ("ports", "states", "portgroups", "volume")
_TEMPLATE: Doc = {
    "target_power_state": None,
    "target_provision_state": None,
    "maintenance": False,
    "maintenance_reason": None,
    "instance_info": {},
    "driver": "ipmi",
    "driver_info": {
        "ipmi_address": "10.0.0.1",
        "ipmi_username": "ADMIN",
        "ipmi_password": "******",
    },
    "driver_internal_info": {},
    "extra": {},
    "properties": {"cpus": 32, "memory_mb": 131072, "local_gb": 900},
    "last_error": None,
    "console_enabled": False,
    "reservation": None,
    "chassis_uuid": None,
    "inspection_started_at": None,
    "inspection_finished_at": None,
    "clean_step": {},
    "raid_config": {},
    "target_raid_config": {},
    "network_interface": "flat",
    "resource_class": "baremetal",
    "boot_interface": "ipxe",
    "console_interface": "no-console",
    "deploy_interface": "direct",
    "inspect_interface": "no-inspect",
    "management_interface": "ipmitool",
    "power_interface": "ipmitool",
    "raid_interface": "no-raid",
    "vendor_interface": "ipmitool",
    "storage_interface": "noop",
    "traits": [],
    "rescue_interface": "no-rescue",
    "bios_interface": "no-bios",
    "fault": None,
    "deploy_step": {},
    "conductor_group": "",
    "automated_clean": None,
    "protected": False,
    "protected_reason": None,
    "conductor": "conductor-1",
    "owner": None,
    "description": None,
    "allocation_uuid": None,
    "retired": False,
    "retired_reason": None,
    "lessee": None,
    "network_data": {},
    "boot_mode": "uefi",
    "secure_boot": None,
    "shard": None,
    "parent_node": None,
    "firmware_interface": "no-firmware",
}


class NodeKind:
    """The ``nodes`` kind.

    Friendly fields: ``uuid``, ``name``, ``power_state``, ``provision_state``,
    ``maintenance``, ``instance_uuid``, ``owner``, ``lessee``, ``driver``,
    ``conductor_group``; any key of the node document is taken verbatim.
    """

    name = "nodes"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new node, ``available`` and powered off unless told otherwise."""
        node_id = fields.pop("uuid", None) or fields.pop("id", None) or str(uuid.uuid4())
        stamp = clock.ironic_time(now)
        doc = {
            **_TEMPLATE,
            "uuid": node_id,
            "name": fields.pop("name", None),
            "power_state": "power off",
            "provision_state": "available",
            "instance_uuid": None,
            "created_at": stamp,
            "updated_at": None,
            "provision_updated_at": stamp,
        }
        doc.update(fields)
        return node_id, doc, {}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The node after an update; ``updated_at`` moves."""
        doc = {**rec.doc, **fields, "updated_at": clock.ironic_time(now)}
        if "provision_state" in fields:
            doc["provision_updated_at"] = doc["updated_at"]
        return doc, rec.meta

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Nodes keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Nothing depends on a node in the fake cloud."""


def error(status: int, message: str) -> Response:
    """Ironic's error body: a JSON document inside a string."""
    inner = orjson.dumps(
        {
            "faultstring": message,
            "faultcode": "Client" if status < 500 else "Server",
            "debuginfo": None,
        }
    ).decode()
    return json_response(status, {"error_message": inner})


def _links(base: str, path: str) -> list[dict[str, str]]:
    return [
        {"href": f"{base}/v1/{path}", "rel": "self"},
        {"href": f"{base}/{path}", "rel": "bookmark"},
    ]


def _renderer(base: str, version: tuple[int, int]) -> Callable[[Record], dict[str, Any]]:
    hidden = _HIDDEN[bisect.bisect_right(_GATE_VERSIONS, version)]

    def render(rec: Record) -> dict[str, Any]:
        out = {k: v for k, v in rec.doc.items() if k not in hidden}
        out["links"] = _links(base, f"nodes/{rec.key}")
        for name in _LINKED:
            if name not in hidden:
                out[name] = _links(base, f"nodes/{rec.key}/{name}")
        return out

    return render


class IronicService(ApiService):
    """The bare metal API of the fake cloud. Threading: stateless."""

    name = "ironic"
    prefixes = ("/baremetal",)
    documents = ("", "/v1")  # as in Ironic

    def listing(self, req: Request) -> str | None:
        """``nodes/detail`` or ``nodes`` for listing GETs."""
        path = req.path.removeprefix("/baremetal/v1/").rstrip("/")
        return path if req.method == "GET" and path in ("nodes", "nodes/detail") else None

    def handle(self, req: Request) -> Response:
        """Route one request and add Ironic's version headers."""
        try:
            resp = self._route(req)
        except ApiError as exc:
            resp = error(exc.status, exc.message)
        resp.headers.update(
            {
                "X-OpenStack-Ironic-API-Minimum-Version": microversion.text(MIN_VERSION),
                "X-OpenStack-Ironic-API-Maximum-Version": microversion.text(MAX_VERSION),
                "x-openstack-request-id": request_id(),
            }
        )
        return resp

    def _route(self, req: Request) -> Response:
        base, path = self.root(req), self.subpath(req).rstrip("/")
        if path in ("", "/v1"):
            return json_response(200, _root(base) if path == "" else _v1(base))
        version = microversion.negotiate(req, "baremetal", MIN_VERSION, MAX_VERSION, _LEGACY)
        if req.method != "GET":
            raise ApiError(405, "The method is not allowed.")
        if path in ("/v1/nodes", "/v1/nodes/detail"):
            resp = self._list(req, version, detail=path.endswith("/detail"))
        elif path.startswith("/v1/nodes/") and path.count("/") == 3:
            resp = self._show(req, version, path.rsplit("/", 1)[1])
        else:
            raise ApiError(404, "The resource could not be found.")
        text = microversion.text(version)
        resp.headers[_LEGACY] = text  # Ironic answers in its own header only
        return resp

    def _list(self, req: Request, version: tuple[int, int], detail: bool) -> Response:
        limit = limit_param(req, MAX_LIMIT)
        try:
            keep = _visible(req, _filters(req))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        base = self.root(req)
        render = _renderer(base, version) if detail else _brief(base)
        key = (bisect.bisect_right(_GATE_VERSIONS, version), base, detail)
        page, parts = self.page(
            req, "nodes", limit, keep, lambda rec: encoded(rec, key, render), noun="Node"
        )
        href = next_link(req, page, limit)
        return Response(200, json_list_body("nodes", parts, {"next": href} if href else {}))

    def _show(self, req: Request, version: tuple[int, int], ident: str) -> Response:
        render = _renderer(self.root(req), version)
        with self.state.lock:
            rec = self.state.get("nodes", ident) or next(
                (r for r in self.state.table("nodes").records() if r.doc["name"] == ident), None
            )
            if rec is None or not _visible(req, lambda r: True)(rec):
                raise not_found("Node", ident)
            return json_response(200, render(rec))


def _brief(base: str) -> Callable[[Record], dict[str, Any]]:
    keys = ("uuid", "name", "instance_uuid", "power_state", "provision_state", "maintenance")

    def render(rec: Record) -> dict[str, Any]:
        out = {k: rec.doc[k] for k in keys}
        out["links"] = _links(base, f"nodes/{rec.key}")
        return out

    return render


def _visible(req: Request, keep: Callable[[Record], bool]) -> Callable[[Record], bool]:
    """What the token may see: everything if system-scoped, else its project's nodes.

    Ironic's policy (39, scope enforced) shows a project-scoped token, even
    an admin's, only the nodes whose ``owner`` or ``lessee`` is its project,
    and still answers 200.
    """
    token = req.token
    if token is None or token.system:
        return keep
    project = token.project_id

    def visible(rec: Record) -> bool:
        return project in (rec.doc.get("owner"), rec.doc.get("lessee")) and keep(rec)

    return visible


def _filters(req: Request) -> Callable[[Record], bool]:
    """Ironic's node list filters; raise ValueError for a bad boolean."""
    exact = {
        k: req.param(k)
        for k in (
            "provision_state",
            "driver",
            "conductor_group",
            "owner",
            "lessee",
            "resource_class",
        )
        if req.param(k) is not None
    }
    maintenance = req.param("maintenance")
    wanted_maintenance = parse_bool(maintenance) if maintenance is not None else None
    associated = req.param("associated")
    wanted_associated = parse_bool(associated) if associated is not None else None

    def keep(rec: Record) -> bool:
        doc = rec.doc
        return (
            all(doc.get(k) == v for k, v in exact.items())
            and (wanted_maintenance is None or doc["maintenance"] == wanted_maintenance)
            and (
                wanted_associated is None or (doc["instance_uuid"] is not None) == wanted_associated
            )
        )

    return keep


def _root(base: str) -> dict[str, Any]:
    version = {
        "id": "v1",
        "links": [{"href": base + "/v1/", "rel": "self"}],
        "min_version": microversion.text(MIN_VERSION),
        "status": "CURRENT",
        "version": microversion.text(MAX_VERSION),
    }
    return {
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision "
        "and management of baremetal machines.",
        "default_version": version,
        "versions": [version],
    }


def _v1(base: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "v1",
        "links": [
            {"href": base + "/v1/", "rel": "self"},
            {
                "href": "https://docs.openstack.org/ironic/latest/contributor/webapi.html",
                "rel": "describedby",
                "type": "text/html",
            },
        ],
        "media_types": [
            {"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}
        ],
    }
    for name in ("chassis", "drivers", "nodes", "ports", "portgroups"):
        doc[name] = [
            {"href": f"{base}/v1/{name}/", "rel": "self"},
            {"href": f"{base}/{name}/", "rel": "bookmark"},
        ]
    return doc
