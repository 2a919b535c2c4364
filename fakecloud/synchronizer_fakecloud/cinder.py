"""Fake Cinder (block storage v3) at ``/volume``: the ``volumes`` kind.

``GET /volume/`` lists versions (300, as Cinder); the catalog URL is
``/volume/v3/{project_id}``. ``GET .../volumes/detail`` honours
``all_tenants``, ``limit`` (at most 1000), ``marker`` and answers newest
first with ``volumes_links`` when a page is full. Microversions come from
``OpenStack-API-Version: volume 3.X`` (3.0 to 3.71, echoed back):

======  =======================================
3.13    ``group_id``
3.21    ``provider_id``
3.48    ``service_uuid``, ``shared_targets``
3.61    ``cluster_name``
3.63    ``volume_type_id``
3.65    ``consumes_quota``
======  =======================================

An attachment is ``{id, attachment_id, volume_id, server_id, host_name,
device, attached_at}``; ``host_name`` is the compute host (recent Cinder
releases hide it and answer null).
"""

from __future__ import annotations

import bisect
import re
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
    bool_param,
    encoded,
    json_list_body,
    json_response,
    limit_param,
    next_link,
    not_found,
    request_id,
)

MAX_LIMIT = 1000
MIN_VERSION, MAX_VERSION = (3, 0), (3, 71)
_GATES = (
    ((3, 13), ("group_id",)),
    ((3, 21), ("provider_id",)),
    ((3, 48), ("service_uuid", "shared_targets")),
    ((3, 61), ("cluster_name",)),
    ((3, 63), ("volume_type_id",)),
    ((3, 65), ("consumes_quota",)),
)
_GATE_VERSIONS = [gate for gate, _ in _GATES]
_HIDDEN = [
    frozenset(k for _, keys in _GATES[shape:] for k in keys) for shape in range(len(_GATES) + 1)
]
_PATH = re.compile(r"^/v3/(?P<project>[^/]+)/volumes(?P<rest>/[^/]*)?/?$")
_TEMPLATE: Doc = {
    "description": None,
    "size": 10,
    "availability_zone": "nova",
    "bootable": "false",
    "encrypted": False,
    "metadata": {},
    "multiattach": False,
    "os-vol-host-attr:host": "cinder@lvmdriver-1#lvmdriver-1",
    "os-vol-mig-status-attr:migstat": None,
    "os-vol-mig-status-attr:name_id": None,
    "replication_status": None,
    "snapshot_id": None,
    "source_volid": None,
    "volume_type": "lvmdriver-1",
    "consistencygroup_id": None,
    "migration_status": None,
    "group_id": None,
    "provider_id": None,
    "service_uuid": "a4d28d55-4e2a-4d3e-8b7a-3d3e0f1c2b6a",
    "shared_targets": False,
    "cluster_name": None,
    "volume_type_id": "5fed9d7c-401d-46e2-8e80-f30c70cb7e1d",
    "consumes_quota": True,
}


def _attachments(
    state: CloudState, volume_id: str, server_id: str | None, now: float, device: str
) -> list[dict[str, Any]]:
    if server_id is None:
        return []
    server = state.get("servers", server_id)
    host = server.doc["OS-EXT-SRV-ATTR:host"] if server else None
    return [
        {
            "id": volume_id,
            "attachment_id": str(uuid.uuid4()),
            "volume_id": volume_id,
            "server_id": server_id,
            "host_name": host,
            "device": device,
            "attached_at": clock.usage_time(now),
        }
    ]


def _link_server(
    state: CloudState, volume_id: str, server_id: str | None, attach: bool = True
) -> None:
    """Keep the server's ``volumes_attached`` in step with the attachment."""
    server = state.live("servers", server_id) if server_id else None
    if server is None:
        return
    attached = [v["id"] for v in server.doc["os-extended-volumes:volumes_attached"]]
    if attach and volume_id not in attached:
        state.update("servers", server.key, {"volumes": [*attached, volume_id]})
    elif not attach and volume_id in attached:
        attached.remove(volume_id)
        state.update("servers", server.key, {"volumes": attached})


class VolumeKind:
    """The ``volumes`` kind.

    Friendly fields: ``id``, ``name``, ``project_id``, ``user_id``,
    ``status``, ``size``, ``zone``, ``server`` (a server id to attach to, or
    None to detach; attaching also lists the volume on the server),
    ``device``; other keys are taken verbatim. Deleting removes the volume.
    """

    name = "volumes"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new volume, ``available`` or ``in-use`` if given a server."""
        volume_id = fields.pop("id", None) or str(uuid.uuid4())
        server_id = fields.pop("server", None)
        stamp = clock.cinder_time(now)
        doc = {
            **_TEMPLATE,
            "id": volume_id,
            "name": fields.pop("name", None),
            "os-vol-tenant-attr:tenant_id": fields.pop("project_id", None)
            or state.context["project_id"],
            "user_id": fields.pop("user_id", None) or state.context["user_id"],
            "status": "in-use" if server_id else "available",
            "availability_zone": fields.pop("zone", "nova"),
            "attachments": _attachments(
                state, volume_id, server_id, now, fields.pop("device", "/dev/vdb")
            ),
            "created_at": stamp,
            "updated_at": stamp,
        }
        doc.update(fields)
        _link_server(state, volume_id, server_id)
        return volume_id, doc, {}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The volume after an update; ``server`` attaches or detaches."""
        doc = dict(rec.doc)
        if "server" in fields:
            server_id = fields.pop("server")
            for old in doc["attachments"]:
                if old["server_id"] != server_id:
                    _link_server(state, rec.key, old["server_id"], attach=False)
            doc["attachments"] = _attachments(
                state, rec.key, server_id, now, fields.pop("device", "/dev/vdb")
            )
            doc["status"] = "in-use" if server_id else "available"
            _link_server(state, rec.key, server_id)
        if "zone" in fields:
            doc["availability_zone"] = fields.pop("zone")
        doc.update(fields)
        doc["updated_at"] = clock.cinder_time(now)
        return doc, rec.meta

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Volumes keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Nothing depends on a volume in the fake cloud."""


def error(status: int, message: str) -> Response:
    """A Cinder fault body (same family as Nova's)."""
    names = {
        400: "badRequest",
        401: "unauthorized",
        404: "itemNotFound",
        405: "badMethod",
        406: "notAcceptable",
    }
    return json_response(
        status, {names.get(status, "computeFault"): {"code": status, "message": message}}
    )


def _version_doc(base: str) -> dict[str, Any]:
    return {
        "id": "v3.0",
        "status": "CURRENT",
        "version": microversion.text(MAX_VERSION),
        "min_version": microversion.text(MIN_VERSION),
        "updated": "2023-08-31T00:00:00Z",
        "links": [
            {"href": "https://docs.openstack.org/", "rel": "describedby", "type": "text/html"},
            {"href": base + "/v3/", "rel": "self"},
        ],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}
        ],
    }


class CinderService(ApiService):
    """The block-storage API of the fake cloud. Threading: stateless."""

    name = "cinder"
    prefixes = ("/volume",)
    documents = ("", "/v3")

    def listing(self, req: Request) -> str | None:
        """``volumes/detail`` or ``volumes`` for listing GETs."""
        match = _PATH.match(self.subpath(req))
        if req.method != "GET" or match is None or match["rest"] not in (None, "/detail"):
            return None
        return "volumes" + (match["rest"] or "")

    def handle(self, req: Request) -> Response:
        """Route one request."""
        base, path = self.root(req), self.subpath(req)
        if path.rstrip("/") == "":
            return json_response(300, {"versions": [_version_doc(base)]})
        if path.rstrip("/") == "/v3":
            return json_response(200, {"versions": [_version_doc(base)]})
        try:
            version = microversion.negotiate(req, "volume", MIN_VERSION, MAX_VERSION)
            resp = self._dispatch(req, path, version)
        except ApiError as exc:
            return error(exc.status, exc.message)
        resp.headers.update(
            {
                "OpenStack-API-Version": f"volume {microversion.text(version)}",
                "Vary": "OpenStack-API-Version",
                "x-openstack-request-id": request_id(),
            }
        )
        return resp

    def _dispatch(self, req: Request, path: str, version: tuple[int, int]) -> Response:
        match = _PATH.match(path)
        if match is None:
            raise ApiError(404, "The resource could not be found.")
        if req.method != "GET":
            raise ApiError(405, "The method specified is not allowed for this resource.")
        rest = match["rest"]
        if rest in (None, "/detail"):
            return self._list(req, version, detail=rest == "/detail")
        return self._show(req, version, rest.lstrip("/"))

    def _renderer(self, req: Request, version: tuple[int, int]) -> tuple[Any, Callable]:
        shape = bisect.bisect_right(_GATE_VERSIONS, version)
        hidden, base = _HIDDEN[shape], self.root(req)

        def render(rec: Record) -> dict[str, Any]:
            out = {k: v for k, v in rec.doc.items() if k not in hidden}
            project = rec.doc["os-vol-tenant-attr:tenant_id"]
            out["links"] = [
                {"href": f"{base}/v3/{project}/volumes/{rec.key}", "rel": "self"},
                {"href": f"{base}/{project}/volumes/{rec.key}", "rel": "bookmark"},
            ]
            return out

        return (shape, base), render

    def _list(self, req: Request, version: tuple[int, int], detail: bool) -> Response:
        project = None if bool_param(req, "all_tenants") else req.project_id
        limit = limit_param(req, MAX_LIMIT)
        key, render = self._renderer(req, version)
        page, parts = self.page(
            req,
            "volumes",
            limit,
            lambda rec: project is None or rec.doc["os-vol-tenant-attr:tenant_id"] == project,
            (lambda rec: encoded(rec, key, render)) if detail else _brief,
            newest_first=True,
            noun="Volume",
        )
        href = next_link(req, page, limit)
        extra = {"volumes_links": [{"href": href, "rel": "next"}]} if href else {}
        return Response(200, json_list_body("volumes", parts, extra))

    def _show(self, req: Request, version: tuple[int, int], volume_id: str) -> Response:
        _, render = self._renderer(req, version)
        with self.state.lock:
            rec = self.state.get("volumes", volume_id)
            if rec is None:
                raise not_found("Volume", volume_id)
            return json_response(200, {"volume": render(rec)})


def _brief(rec: Record) -> bytes:
    return orjson.dumps({"id": rec.key, "name": rec.doc["name"]})
