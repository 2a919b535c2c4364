"""Nova servers: the ``servers`` kind and its rendering by microversion.

A server's canonical document is Nova's admin view at the highest
microversion (2.96); older microversions are derived from it by dropping
the keys added later and, before 2.47, replacing the embedded flavor by
``{id, links}``. What changes with the microversion:

==========  ====================================================
2.3         ``OS-EXT-SRV-ATTR:{hostname,kernel_id,launch_index,
            ramdisk_id,reservation_id,root_device_name,user_data}``
2.9         ``locked``
2.16        ``host_status`` (computed from the host's service)
2.19        ``description``
2.26        ``tags``
2.47        ``flavor`` embedded (no flavor id any more)
2.63        ``trusted_image_certificates``
2.66        ``changes-before`` filter accepted
2.71        ``server_groups`` (GET /servers/{id} only)
2.73        ``locked_reason``
2.96        ``pinned_availability_zone``
==========  ====================================================

The listing endpoints are in :mod:`synchronizer_fakecloud.nova_server_api`.
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from synchronizer_fakecloud import clock, nova_flavors
from synchronizer_fakecloud.nova_hosts import host_statuses
from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import encoded

if TYPE_CHECKING:
    from collections.abc import Callable

    from synchronizer_fakecloud.nova import NovaCall

IMAGE_ID = "70a599e0-31e7-49b7-b260-868f441e862b"
# status -> (vm_state, power_state); power states: 1 running, 3 paused,
# 4 shutdown, 7 suspended, 0 no state.
STATUSES = {
    "ACTIVE": ("active", 1),
    "SHUTOFF": ("stopped", 4),
    "ERROR": ("error", 0),
    "BUILD": ("building", 0),
    "PAUSED": ("paused", 3),
    "SUSPENDED": ("suspended", 7),
    "SHELVED_OFFLOADED": ("shelved_offloaded", 4),
    "RESCUE": ("rescued", 1),
    "VERIFY_RESIZE": ("resized", 1),
    "SOFT_DELETED": ("soft-delete", 4),
}
_GATES: tuple[tuple[tuple[int, int], tuple[str, ...]], ...] = (
    (
        (2, 3),
        (
            "OS-EXT-SRV-ATTR:hostname",
            "OS-EXT-SRV-ATTR:kernel_id",
            "OS-EXT-SRV-ATTR:launch_index",
            "OS-EXT-SRV-ATTR:ramdisk_id",
            "OS-EXT-SRV-ATTR:reservation_id",
            "OS-EXT-SRV-ATTR:root_device_name",
            "OS-EXT-SRV-ATTR:user_data",
        ),
    ),
    ((2, 9), ("locked",)),
    ((2, 16), ("host_status",)),
    ((2, 19), ("description",)),
    ((2, 26), ("tags",)),
    ((2, 47), ()),
    ((2, 63), ("trusted_image_certificates",)),
    ((2, 73), ("locked_reason",)),
    ((2, 96), ("pinned_availability_zone",)),
)
_GATE_VERSIONS = [gate for gate, _ in _GATES]
_FLAVOR_SHAPE = _GATE_VERSIONS.index((2, 47)) + 1
_HIDDEN = [
    frozenset(key for _, keys in _GATES[shape:] for key in keys) for shape in range(len(_GATES) + 1)
]
_TEMPLATE: Doc = {
    "accessIPv4": "",
    "accessIPv6": "",
    "config_drive": "",
    "key_name": None,
    "OS-DCF:diskConfig": "MANUAL",
    "progress": 0,
    "OS-SRV-USG:terminated_at": None,
    "OS-EXT-SRV-ATTR:kernel_id": "",
    "OS-EXT-SRV-ATTR:ramdisk_id": "",
    "OS-EXT-SRV-ATTR:launch_index": 0,
    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
    "OS-EXT-SRV-ATTR:user_data": None,
    "security_groups": [{"name": "default"}],
    "trusted_image_certificates": None,
    "pinned_availability_zone": None,
    "locked": False,
    "locked_reason": None,
    "description": None,
}


def _address(server_id: str) -> dict[str, Any]:
    n = int(server_id[:6], 16)
    ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{(n & 255) or 1}"
    mac = f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
    return {
        "private": [
            {"addr": ip, "version": 4, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}
        ]
    }


def _placement(state: CloudState, project_id: str, host: str | None) -> Doc:
    """Host-derived keys: hypervisor name, zone, hostId."""
    hyp = state.table("hypervisors").get(host) if host else None
    hostname = hyp.doc["hypervisor_hostname"] if hyp else host
    zone = hyp.meta["zone"] if hyp else "nova"
    host_id = hashlib.sha224((project_id + (host or "")).encode()).hexdigest() if host else ""
    return {
        "OS-EXT-SRV-ATTR:host": host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": hostname,
        "OS-EXT-AZ:availability_zone": zone,
        "hostId": host_id,
    }


def _status_keys(status: str) -> Doc:
    try:
        vm_state, power = STATUSES[status]
    except KeyError:
        raise ValueError(
            f"unknown server status {status!r}, expected one of {sorted(STATUSES)}"
        ) from None
    return {
        "status": status,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-EXT-STS:power_state": power,
        "OS-EXT-STS:task_state": None,
    }


def _volumes(ids: list[str]) -> list[dict[str, Any]]:
    return [{"id": vid, "delete_on_termination": False} for vid in ids]


class ServerKind:
    """The ``servers`` kind: friendly fields to Nova's server document.

    Friendly fields: ``id``, ``name``, ``project_id`` (or ``tenant_id``),
    ``user_id``, ``host`` (a hypervisor's host; sets hypervisor name, zone
    and hostId), ``status`` (sets vm_state and power_state), ``flavor``
    (a flavor's name or id; the server keeps a copy, as Nova does),
    ``metadata``, ``tags``, ``locked``, ``description``, ``volumes`` (ids),
    ``task_state``; any key of the API document is taken verbatim.
    Deleted servers stay as tombstones with ``status: DELETED``.
    """

    name = "servers"
    tombstones = True

    def __init__(self) -> None:
        # name -> flavor record: bulk creation looks up one of a few flavors
        # per server; a hit is valid while the record is current and so named.
        self._flavors: dict[str, Record] = {}

    def _flavor(self, state: CloudState, name: str) -> Record:
        rec = self._flavors.get(name)
        if (
            rec is None
            or state.table("flavors").get(rec.key) is not rec
            or name not in (rec.key, rec.doc["name"])
        ):
            rec = nova_flavors.find(state, name)
            if rec is None:
                raise ValueError(f"unknown flavor {name!r}")
            self._flavors[name] = rec
        return rec

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new server document (see class docstring for fields)."""
        server_id = fields.pop("id", None) or str(uuid.uuid4())
        project = (
            fields.pop("project_id", None)
            or fields.pop("tenant_id", None)
            or state.context["project_id"]
        )
        name = fields.pop("name", None) or f"server-{server_id[:8]}"
        flavor = self._flavor(state, fields.pop("flavor", "m1.small"))
        created = clock.nova_time(now)
        doc = {
            **_TEMPLATE,
            "id": server_id,
            "name": name,
            "tenant_id": project,
            "user_id": fields.pop("user_id", None) or state.context["user_id"],
            "created": created,
            "updated": created,
            "metadata": {},
            "tags": [],
            "flavor": flavor.meta["embedded"],
            "addresses": _address(server_id),
            "OS-SRV-USG:launched_at": clock.usage_time(now),
            "OS-EXT-SRV-ATTR:hostname": name,
            "os-extended-volumes:volumes_attached": [],
            "OS-EXT-SRV-ATTR:instance_name": f"instance-{server_id[:8]}",
            "OS-EXT-SRV-ATTR:reservation_id": f"r-{server_id[-8:]}",
            **_placement(state, project, fields.pop("host", None)),
            **_status_keys(fields.pop("status", "ACTIVE")),
        }
        doc = self._merge(doc, fields)
        return server_id, doc, {"flavor_id": flavor.key, "ports": []}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The document after friendly updates; ``updated`` moves."""
        doc, meta = dict(rec.doc), rec.meta
        if "host" in fields:
            doc.update(_placement(state, doc["tenant_id"], fields.pop("host")))
        if "status" in fields:
            doc.update(_status_keys(fields.pop("status")))
        if "flavor" in fields:
            flavor = self._flavor(state, fields.pop("flavor"))
            doc["flavor"] = flavor.meta["embedded"]
            meta = {**meta, "flavor_id": flavor.key}
        doc = self._merge(doc, fields)
        doc["updated"] = clock.nova_time(now)
        return doc, meta

    @staticmethod
    def _merge(doc: Doc, fields: Doc) -> Doc:
        aliases = {
            "task_state": "OS-EXT-STS:task_state",
            "vm_state": "OS-EXT-STS:vm_state",
            "power_state": "OS-EXT-STS:power_state",
        }
        if "volumes" in fields:
            doc["os-extended-volumes:volumes_attached"] = _volumes(fields.pop("volumes"))
        for key, value in fields.items():
            doc[aliases.get(key, key)] = value
        return doc

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """A deleted server as ``changes-since`` shows it."""
        return {
            **rec.doc,
            "status": "DELETED",
            "OS-EXT-STS:vm_state": "deleted",
            "OS-EXT-STS:task_state": None,
            "OS-EXT-STS:power_state": 0,
            "OS-SRV-USG:terminated_at": clock.usage_time(now),
            "updated": clock.nova_time(now),
        }

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Detach the server's volumes and delete its ports, as Nova does."""
        for attachment in rec.doc["os-extended-volumes:volumes_attached"]:
            if state.live("volumes", attachment["id"]):
                state.update("volumes", attachment["id"], {"server": None})
        for port_id in rec.meta.get("ports", ()):
            port = state.live("ports", port_id)
            if port is not None and port.doc["device_id"] == rec.key:
                state.delete("ports", port_id)


def shape_of(version: tuple[int, int]) -> int:
    """The rendering shape (an index into the gates) of a microversion."""
    return bisect.bisect_right(_GATE_VERSIONS, version)


def encoder(call: NovaCall, shape: int) -> Callable[[Record], bytes]:
    """Encode servers for a shape: cached document bytes plus a fresh tail.

    The document part (the canonical doc minus later keys) is encoded once
    per record and shape and cached; the tail (``host_status``, computed
    now, as Nova does, and the URL-bearing ``image``, ``links`` and old
    ``flavor``) is encoded per request and spliced in.
    """
    base, hidden = call.base, _HIDDEN[shape]
    old_flavor = shape < _FLAVOR_SHAPE
    drop = hidden | {"flavor"} if old_flavor else hidden
    statuses = host_statuses(call.state) if "host_status" not in hidden else None
    image = {"id": IMAGE_ID, "links": [{"href": f"{base}/images/{IMAGE_ID}", "rel": "bookmark"}]}

    def core(rec: Record) -> dict[str, Any]:
        return {k: v for k, v in rec.doc.items() if k not in drop} if drop else rec.doc

    def encode(rec: Record) -> bytes:
        sid = rec.key
        tail: dict[str, Any] = {
            "image": image,
            "links": [
                {"href": f"{base}/v2.1/servers/{sid}", "rel": "self"},
                {"href": f"{base}/servers/{sid}", "rel": "bookmark"},
            ],
        }
        if statuses is not None:
            tail["host_status"] = statuses.get(rec.doc["OS-EXT-SRV-ATTR:host"], "")
        if old_flavor:
            fid = rec.meta["flavor_id"]
            tail["flavor"] = {
                "id": fid,
                "links": [{"href": f"{base}/flavors/{fid}", "rel": "bookmark"}],
            }
        return encoded(rec, ("servers", shape), core)[:-1] + b"," + orjson.dumps(tail)[1:]

    return encode
