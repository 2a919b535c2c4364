"""Fake Neutron at ``/network``: the ``networks`` and ``ports`` kinds.

``GET /network/`` lists versions, ``GET /network/v2.0/`` lists resources
(both unauthenticated). ``GET /v2.0/networks`` and ``/v2.0/ports`` return
everything unless ``limit`` is given (Neutron has no default page size);
with ``limit`` they page by ``marker`` and add ``<collection>_links``:
``next`` when the page is full and ``previous`` whenever a limit is given,
as Neutron does. Equality filters on any top-level attribute
(``?device_id=...``) and ``fields=`` are honoured. An admin sees every
project; every update increments ``revision_number``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from synchronizer_fakecloud import clock
from synchronizer_fakecloud.service import ApiService
from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import (
    ApiError,
    Request,
    Response,
    encoded,
    json_list_body,
    json_response,
    next_href,
    next_link,
    not_found,
    parse_limit,
    request_id,
)

_NS = uuid.UUID("a1f0c3d4-5b6e-4f70-8192-a3b4c5d6e7f8")
_PAGING = frozenset({"limit", "marker", "page_reverse", "fields", "sort_key", "sort_dir"})
_SINGULAR = {"networks": "network", "ports": "port"}
_NET_TEMPLATE: Doc = {
    "admin_state_up": True,
    "availability_zone_hints": [],
    "availability_zones": ["nova"],
    "description": "",
    "dns_domain": "",
    "ipv4_address_scope": None,
    "ipv6_address_scope": None,
    "is_default": False,
    "l2_adjacency": True,
    "mtu": 1450,
    "port_security_enabled": True,
    "provider:network_type": "geneve",
    "provider:physical_network": None,
    "qos_policy_id": None,
    "router:external": False,
    "shared": False,
    "status": "ACTIVE",
    "tags": [],
    "revision_number": 1,
}
_PORT_TEMPLATE: Doc = {
    "admin_state_up": True,
    "allowed_address_pairs": [],
    "binding:profile": {},
    "binding:vif_details": {
        "port_filter": True,
        "connectivity": "l2",
        "bridge_name": "br-int",
        "datapath_type": "system",
    },
    "binding:vif_type": "ovs",
    "binding:vnic_type": "normal",
    "data_plane_status": None,
    "description": "",
    "dns_assignment": [],
    "dns_domain": "",
    "dns_name": "",
    "extra_dhcp_opts": [],
    "ip_allocation": "immediate",
    "name": "",
    "port_security_enabled": True,
    "propagate_uplink_status": False,
    "qos_network_policy_id": None,
    "qos_policy_id": None,
    "resource_request": None,
    "security_groups": [str(uuid.uuid5(_NS, "default-sg"))],
    "status": "ACTIVE",
    "tags": [],
    "revision_number": 1,
}


def _owner(state: CloudState, fields: Doc) -> str:
    project = fields.pop("project_id", None) or fields.pop("tenant_id", None)
    return project or state.context["project_id"]


def _update(rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
    doc = {
        **rec.doc,
        **fields,
        "updated_at": clock.neutron_time(now),
        "revision_number": rec.doc["revision_number"] + 1,
    }
    if "project_id" in fields:
        doc["tenant_id"] = fields["project_id"]
    return doc, rec.meta


class NetworkKind:
    """The ``networks`` kind. Friendly fields: ``id``, ``name``,
    ``project_id``, ``status``, ``shared``, ``external``; others verbatim."""

    name = "networks"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new network with one subnet id."""
        net_id = fields.pop("id", None) or str(uuid.uuid4())
        project = _owner(state, fields)
        stamp = clock.neutron_time(now)
        seq = state.context["network_seq"] = state.context.get("network_seq", 0) + 1
        doc = {
            **_NET_TEMPLATE,
            "id": net_id,
            "name": fields.pop("name", f"net-{seq}"),
            "project_id": project,
            "tenant_id": project,
            "router:external": fields.pop("external", False),
            "provider:segmentation_id": seq,
            "subnets": [str(uuid.uuid5(_NS, net_id))],
            "created_at": stamp,
            "updated_at": stamp,
        }
        doc.update(fields)
        return net_id, doc, {"seq": seq}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The network after an update; revision and ``updated_at`` move."""
        if "external" in fields:
            fields["router:external"] = fields.pop("external")
        return _update(rec, fields, now)

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Networks keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Ports of a deleted network are left as they are."""


class PortKind:
    """The ``ports`` kind.

    Friendly fields: ``id``, ``network_id``, ``project_id``, ``server`` (a
    server id: sets ``device_id``, ``device_owner: compute:<zone>`` and
    ``binding:host_id`` from the server), ``host``, ``ip``, ``status``;
    other keys verbatim. Ports of a deleted server are deleted with it.
    """

    name = "ports"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new port, bound to a server's host if given a server."""
        port_id = fields.pop("id", None) or str(uuid.uuid4())
        network_id = fields.pop("network_id", None) or str(uuid.uuid5(_NS, "default-net"))
        n = int(port_id[:6], 16)
        ip = fields.pop("ip", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{(n & 255) or 1}")
        project = _owner(state, fields)
        stamp = clock.neutron_time(now)
        doc = {
            **_PORT_TEMPLATE,
            "id": port_id,
            "network_id": network_id,
            "project_id": project,
            "tenant_id": project,
            "mac_address": f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}",
            "fixed_ips": [{"subnet_id": str(uuid.uuid5(_NS, network_id)), "ip_address": ip}],
            "device_id": "",
            "device_owner": "",
            "binding:host_id": fields.pop("host", ""),
            "created_at": stamp,
            "updated_at": stamp,
        }
        server_id = fields.pop("server", None)
        if server_id:
            doc.update(_binding(state, port_id, server_id))
        doc.update(fields)
        return port_id, doc, {}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The port after an update; revision and ``updated_at`` move."""
        if "server" in fields:
            fields.update(_binding(state, rec.key, fields.pop("server")))
        if "host" in fields:
            fields["binding:host_id"] = fields.pop("host")
        return _update(rec, fields, now)

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Ports keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Nothing depends on a port in the fake cloud."""


def _binding(state: CloudState, port_id: str, server_id: str | None) -> Doc:
    """Device and binding keys for a port on a server (or unbound)."""
    server = state.live("servers", server_id) if server_id else None
    if server is None:
        return {"device_id": "", "device_owner": "", "binding:host_id": ""}
    server.meta = {**server.meta, "ports": [*server.meta.get("ports", ()), port_id]}
    return {
        "device_id": server.key,
        "device_owner": "compute:" + server.doc["OS-EXT-AZ:availability_zone"],
        "binding:host_id": server.doc["OS-EXT-SRV-ATTR:host"] or "",
    }


def error(status: int, message: str, kind: str = "HTTPNotFound") -> Response:
    """A Neutron error body."""
    return json_response(status, {"NeutronError": {"type": kind, "message": message, "detail": ""}})


class NeutronService(ApiService):
    """The networking API of the fake cloud. Threading: stateless."""

    name = "neutron"
    prefixes = ("/network",)
    documents = ("", "/v2.0")

    @staticmethod
    def _collection(req: Request) -> tuple[str, str | None] | None:
        parts = req.path.removeprefix("/network/v2.0/").removesuffix(".json").split("/")
        if parts[0] in _SINGULAR and len(parts) <= 2:
            return parts[0], parts[1] if len(parts) == 2 and parts[1] else None
        return None

    def listing(self, req: Request) -> str | None:
        """``networks`` or ``ports`` for listing GETs."""
        found = self._collection(req) if req.path.startswith("/network/v2.0/") else None
        return found[0] if req.method == "GET" and found and found[1] is None else None

    def handle(self, req: Request) -> Response:
        """Route one request."""
        path = self.subpath(req).rstrip("/")
        if path in self.documents:
            return json_response(200, _discovery(self.root(req), path))
        found = self._collection(req) if path.startswith("/v2.0/") else None
        if found is None:
            return error(404, "The resource could not be found.")
        if req.method != "GET":
            return error(405, "The method is not allowed.", "HTTPMethodNotAllowed")
        try:
            resp = self._list(req, found[0]) if found[1] is None else self._show(req, *found)
        except ApiError as exc:
            return error(exc.status, exc.message, _error_type(found[0], exc.status))
        resp.headers["x-openstack-request-id"] = request_id()
        return resp

    def _list(self, req: Request, kind: str) -> Response:
        try:
            limit = parse_limit(req.param("limit"), None)
        except ValueError:
            raise ApiError(
                400,
                "Bad limit request: Limit must be an integer 0 or "
                f"greater and not '{req.param('limit')}'.",
            ) from None
        keep, render = _filters(req), _fields(req.query.get("fields"))
        key = ("fields", tuple(req.query.get("fields") or ()))
        page, parts = self.page(
            req, kind, limit, keep, lambda rec: encoded(rec, key, render), noun=_noun(kind)
        )
        extra = {kind + "_links": _links(req, page, limit)} if limit else {}
        return Response(200, json_list_body(kind, parts, extra))

    def _show(self, req: Request, kind: str, ident: str) -> Response:
        with self.state.lock:
            rec = self.state.get(kind, ident)
            if rec is None:
                raise not_found(_noun(kind), ident)
            return json_response(200, {_SINGULAR[kind]: _fields(None)(rec)})


def _noun(kind: str) -> str:
    """``Network`` or ``Port``, as Neutron's messages name them."""
    return _SINGULAR[kind].title()


def _discovery(base: str, path: str) -> dict[str, Any]:
    """The versions list (root) or the resources list (``/v2.0``)."""
    if path == "":
        links = [{"href": base + "/v2.0/", "rel": "self"}]
        return {"versions": [{"status": "CURRENT", "id": "v2.0", "links": links}]}
    resources = [
        {"name": one, "collection": many, "links": [{"href": f"{base}/v2.0/{many}", "rel": "self"}]}
        for many, one in _SINGULAR.items()
    ]
    return {"resources": resources}


def _error_type(kind: str, status: int) -> str:
    if status == 404:
        return f"{_noun(kind)}NotFound"
    return "HTTPBadRequest"


def _links(req: Request, page: list[Record], limit: int) -> list[dict[str, str]]:
    links = []
    if href := next_link(req, page, limit, ["page_reverse"]):
        links.append({"rel": "next", "href": href})
    first = page[0].key if page else (req.param("marker") or "")
    prev = next_href(req, first, ["page_reverse"]) + "&page_reverse=True"
    links.append({"rel": "previous", "href": prev})
    return links


def _filters(req: Request) -> Callable[[Record], bool]:
    # Lower-cased variants let ``?shared=True`` match a boolean.
    wanted = {
        k: set(vs) | {v.lower() for v in vs} for k, vs in req.query.items() if k not in _PAGING
    }

    def keep(rec: Record) -> bool:
        doc = rec.doc
        return all(_text(doc.get(k)) in values for k, values in wanted.items())

    return keep


def _text(value: Any) -> str:
    """A value as a query string carries it (``true`` for True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _fields(names: list[str] | None) -> Callable[[Record], dict[str, Any]]:
    if not names:
        return lambda rec: rec.doc
    wanted = set(names)
    return lambda rec: {k: v for k, v in rec.doc.items() if k in wanted}
