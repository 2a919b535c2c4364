"""Nova hosts: the ``hypervisors`` kind, hypervisors, zones and services.

One hypervisor record is one compute host: its key is the compute
service's host name (``compute-0001``), which is what servers show as
``OS-EXT-SRV-ATTR:host``; its ``hypervisor_hostname`` is by default that
name plus a domain (``compute-0001.cloud.local``), as libvirt reports it, so
the two differ as they do on real clouds. What changes with the
microversion of ``GET /os-hypervisors/detail``:

==========  ====================================================
2.28        ``cpu_info`` is an object instead of a JSON string
2.33        ``limit``/``marker`` paging, ``hypervisors_links``
2.53        ``id`` and ``service.id`` are UUIDs (markers too);
            ``with_servers=true`` adds ``servers: [{name, uuid}]``
2.88        ``vcpus``, ``memory_mb``, ``local_gb``, ``vcpus_used``,
            ``memory_mb_used``, ``local_gb_used``, ``free_ram_mb``,
            ``free_disk_gb``, ``current_workload``, ``running_vms``,
            ``disk_available_least`` and ``cpu_info`` are gone;
            ``uptime`` appears
==========  ====================================================

Usage counters (``running_vms``, ``*_used``, ``free_*``) are computed from
the servers on the host at request time, as Nova's resource tracker would
report them, so they change when servers come and go.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from synchronizer_fakecloud import clock
from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import ApiError, Response, json_response, next_href, parse_limit

if TYPE_CHECKING:
    from synchronizer_fakecloud.nova import NovaCall

MAX_LIMIT = 1000
DOMAIN = "cloud.local"
CONTROLLER = "controller"
_NS = uuid.UUID("0f6a8a52-8d0b-4c84-93f2-6f0ff2d0a3b1")
_CPU_INFO = {
    "arch": "x86_64",
    "model": "Cascadelake-Server",
    "vendor": "Intel",
    "features": ["pge", "clflush", "avx512f"],
    "topology": {"cores": 16, "threads": 2, "sockets": 2},
}
_RESOURCE_KEYS = (
    "vcpus",
    "memory_mb",
    "local_gb",
    "vcpus_used",
    "memory_mb_used",
    "local_gb_used",
    "free_ram_mb",
    "free_disk_gb",
    "current_workload",
    "running_vms",
    "disk_available_least",
    "cpu_info",
)


class HypervisorKind:
    """The ``hypervisors`` kind: a compute host with its nova-compute service.

    Friendly fields: ``host``, ``hypervisor_hostname``, ``zone``, ``state``
    (up/down), ``status`` (enabled/disabled), ``disabled_reason``,
    ``forced_down``, ``vcpus``, ``memory_mb``, ``local_gb``, ``host_ip``;
    other keys are taken verbatim. Deleting a hypervisor removes it.
    """

    name = "hypervisors"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new compute host."""
        seq = state.context["hypervisor_seq"] = state.context.get("hypervisor_seq", 0) + 1
        host = fields.pop("host", None) or f"compute-{seq:04d}"
        doc = {
            "hypervisor_hostname": f"{host}.{DOMAIN}",
            "state": "up",
            "status": "enabled",
            "disabled_reason": None,
            "forced_down": False,
            "host_ip": f"192.168.{seq // 250}.{seq % 250 + 1}",
            "hypervisor_type": "QEMU",
            "hypervisor_version": 8002000,
            "vcpus": 128,
            "memory_mb": 1048576,
            "local_gb": 20480,
            "current_workload": 0,
            "uptime": " 10:00:00 up 42 days,  1:02,  0 users,  load average: 0.5, 0.4, 0.3",
        }
        meta = {
            "id": seq,
            "uuid": str(uuid.uuid5(_NS, "hypervisor:" + host)),
            "service_id": seq + 2,
            "service_uuid": str(uuid.uuid5(_NS, "service:" + host)),
            "zone": fields.pop("zone", "nova"),
            "service_updated": now,
        }
        doc.update(fields)
        return host, doc, meta

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The host after an update (a service state change, a move of zone)."""
        meta = {**rec.meta, "service_updated": now}
        if "zone" in fields:
            meta["zone"] = fields.pop("zone")
        return {**rec.doc, **fields}, meta

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Hypervisors keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Servers keep their host name, as after a compute node removal."""


def host_statuses(state: CloudState) -> dict[str, str]:
    """``host_status`` (2.16+) of every host, as Nova computes it."""
    statuses = {}
    for rec in state.table("hypervisors").records():
        doc = rec.doc
        if doc.get("forced_down"):
            statuses[rec.key] = "DOWN"
        elif doc["status"] == "disabled":
            statuses[rec.key] = "MAINTENANCE"
        else:
            statuses[rec.key] = "UP" if doc["state"] == "up" else "UNKNOWN"
    return statuses


def _usage(state: CloudState) -> dict[str, list[int]]:
    """Per host: [running_vms, vcpus, memory_mb, disk_gb] of live servers."""
    usage: dict[str, list[int]] = {}
    for rec in state.table("servers").records():
        if rec.deleted is None:
            flavor = rec.doc["flavor"]
            used = usage.setdefault(rec.doc["OS-EXT-SRV-ATTR:host"], [0, 0, 0, 0])
            used[0] += 1
            used[1] += flavor["vcpus"]
            used[2] += flavor["ram"]
            used[3] += flavor["disk"]
    return usage


def _resources(doc: Doc, used: list[int], version: tuple[int, int]) -> dict[str, Any]:
    count, vcpus, ram, disk = used
    cpu_info: Any = _CPU_INFO
    if version < (2, 28):
        cpu_info = (
            '{"arch": "x86_64", "model": "Cascadelake-Server", "vendor": "Intel", '
            '"features": ["pge", "clflush", "avx512f"], '
            '"topology": {"cores": 16, "threads": 2, "sockets": 2}}'
        )
    return {
        "vcpus": doc["vcpus"],
        "memory_mb": doc["memory_mb"],
        "local_gb": doc["local_gb"],
        "vcpus_used": vcpus,
        "memory_mb_used": ram + 512,
        "local_gb_used": disk,
        "free_ram_mb": doc["memory_mb"] - ram - 512,
        "free_disk_gb": doc["local_gb"] - disk,
        "current_workload": doc["current_workload"],
        "running_vms": count,
        "disk_available_least": doc["local_gb"] - disk,
        "cpu_info": cpu_info,
    }


def _hypervisor(rec: Record, version: tuple[int, int], used: list[int] | None) -> dict:
    doc, meta = rec.doc, rec.meta
    uuids = version >= (2, 53)
    out = {
        "id": meta["uuid"] if uuids else meta["id"],
        "hypervisor_hostname": doc["hypervisor_hostname"],
        "state": doc["state"],
        "status": doc["status"],
        "host_ip": doc["host_ip"],
        "hypervisor_type": doc["hypervisor_type"],
        "hypervisor_version": doc["hypervisor_version"],
        "service": {
            "host": rec.key,
            "id": meta["service_uuid"] if uuids else meta["service_id"],
            "disabled_reason": doc["disabled_reason"],
        },
    }
    if version >= (2, 88):
        out["uptime"] = doc["uptime"]
    else:
        out.update(_resources(doc, used or [0, 0, 0, 0], version))
    return out


def _find(call: NovaCall, ident: str) -> Record | None:
    field = "uuid" if call.version >= (2, 53) else "id"
    for rec in call.state.table("hypervisors").records():
        if str(rec.meta[field]) == ident:
            return rec
    return None


def _page(call: NovaCall) -> tuple[list[Record], int | None]:
    table = call.state.table("hypervisors")
    if call.version < (2, 33):
        return list(table.records()), None
    try:
        limit = parse_limit(call.req.param("limit"), MAX_LIMIT) or MAX_LIMIT
    except ValueError:
        raise ApiError(400, "Invalid input for query parameters limit.") from None
    marker = call.req.param("marker")
    after = None
    if marker is not None:
        found = _find(call, marker)
        if found is None:
            raise ApiError(400, f"marker [{marker}] not found")
        after = found.key
    page = []
    for rec in table.scan(after):
        page.append(rec)
        if len(page) >= limit:
            break
    return page, limit


def _listing(call: NovaCall, items: list[dict], limit: int | None) -> Response:
    body: dict[str, Any] = {"hypervisors": items}
    if limit is not None and items and len(items) == limit:
        marker = str(items[-1]["id"])
        body["hypervisors_links"] = [{"href": next_href(call.req, marker), "rel": "next"}]
    return json_response(200, body)


def _servers_by_host(state: CloudState) -> dict[str, list[dict[str, str]]]:
    by_host: dict[str, list[dict[str, str]]] = {}
    for rec in state.table("servers").records():
        if rec.deleted is None:
            by_host.setdefault(rec.doc["OS-EXT-SRV-ATTR:host"], []).append(
                {"name": rec.doc["name"], "uuid": rec.key}
            )
    return by_host


def list_detail(call: NovaCall) -> Response:
    """``GET /os-hypervisors/detail``."""
    with_servers = call.version >= (2, 53) and call.req.param("with_servers") in ("true", "1")
    with call.state.lock:
        page, limit = _page(call)
        usage = _usage(call.state) if call.version < (2, 88) else {}
        servers = _servers_by_host(call.state) if with_servers else {}
        items = [_hypervisor(rec, call.version, usage.get(rec.key)) for rec in page]
    for rec, item in zip(page, items, strict=True):
        if servers.get(rec.key):
            item["servers"] = servers[rec.key]
    return _listing(call, items, limit)


def list_brief(call: NovaCall) -> Response:
    """``GET /os-hypervisors``."""
    with call.state.lock:
        page, limit = _page(call)
        items = [
            {key: item[key] for key in ("id", "hypervisor_hostname", "state", "status")}
            for item in (_hypervisor(rec, call.version, None) for rec in page)
        ]
    return _listing(call, items, limit)


def show(call: NovaCall, ident: str) -> Response:
    """``GET /os-hypervisors/{id}``."""
    with call.state.lock:
        rec = _find(call, ident)
        if rec is None:
            raise ApiError(404, f"Hypervisor with ID {ident} could not be found.")
        usage = _usage(call.state)
        item = _hypervisor(rec, call.version, usage.get(rec.key))
    return json_response(200, {"hypervisor": item})


REPORT_INTERVAL = 10.0


def heartbeat(state: str, updated: float, now: float) -> float:
    """A service's ``updated_at``: its last report, as Nova's database keeps it.

    A live service reports every ``report_interval`` (10 s), so the time
    moves on its own between two listings; a dead one stopped reporting when
    it went down.  MySQL keeps whole seconds.
    """
    if state != "up":
        return float(int(updated))
    return float(int(now // REPORT_INTERVAL * REPORT_INTERVAL))


def _controller_services() -> list[tuple[int, str]]:
    return [(1, "nova-conductor"), (2, "nova-scheduler")]


def zones_detail(call: NovaCall) -> Response:
    """``GET /os-availability-zone/detail``: zones with their hosts."""
    now = call.state.clock.peek()
    internal = {
        "zoneName": "internal",
        "zoneState": {"available": True},
        "hosts": {
            CONTROLLER: {
                binary: {
                    "available": True,
                    "active": True,
                    "updated_at": clock.usage_time(heartbeat("up", now, now)),
                }
                for _, binary in _controller_services()
            }
        },
    }
    with call.state.lock:
        zones = _zones(call.state.table("hypervisors").records(), verbose=True, now=now)
    return json_response(200, {"availabilityZoneInfo": [internal, *zones]})


def zones_brief(call: NovaCall) -> Response:
    """``GET /os-availability-zone``: zones without hosts."""
    with call.state.lock:
        zones = _zones(
            call.state.table("hypervisors").records(), verbose=False, now=call.state.clock.peek()
        )
    return json_response(200, {"availabilityZoneInfo": zones})


def _zones(records: Iterable[Record], verbose: bool, now: float) -> list[dict[str, Any]]:
    """Zones of enabled hosts are available; the others are not (hosts null)."""
    hosts: dict[str, dict[str, Any]] = {}
    for rec in records:
        zone = hosts.setdefault(rec.meta["zone"], {})
        if rec.doc["status"] == "enabled":
            zone[rec.key] = {
                "nova-compute": {
                    "available": rec.doc["state"] == "up",
                    "active": True,
                    "updated_at": clock.usage_time(
                        heartbeat(rec.doc["state"], rec.meta["service_updated"], now)
                    ),
                }
            }
    return [
        {
            "zoneName": name,
            "zoneState": {"available": bool(members)},
            "hosts": (members if verbose else None) if members else None,
        }
        for name, members in hosts.items()
    ]


def services(call: NovaCall) -> Response:
    """``GET /os-services``: controller services and one nova-compute per host.

    ``binary`` and ``host`` filter, as in Nova.
    """
    uuids = call.version >= (2, 53)
    now = call.state.clock.peek()
    items = [
        _service(
            call,
            sid,
            binary,
            CONTROLLER,
            "internal",
            "up",
            "enabled",
            None,
            heartbeat("up", now, now),
        )
        for sid, binary in _controller_services()
    ]
    with call.state.lock:
        for rec in call.state.table("hypervisors").records():
            doc, meta = rec.doc, rec.meta
            sid = meta["service_uuid"] if uuids else meta["service_id"]
            items.append(
                _service(
                    call,
                    sid,
                    "nova-compute",
                    rec.key,
                    meta["zone"],
                    doc["state"],
                    doc["status"],
                    doc["disabled_reason"],
                    heartbeat(doc["state"], meta["service_updated"], now),
                    doc.get("forced_down", False),
                )
            )
    binary, host = call.req.param("binary"), call.req.param("host")
    items = [
        item
        for item in items
        if (binary is None or item["binary"] == binary) and (host is None or item["host"] == host)
    ]
    return json_response(200, {"services": items})


def _service(
    call: NovaCall,
    sid: Any,
    binary: str,
    host: str,
    zone: str,
    state: str,
    status: str,
    reason: str | None,
    updated: float,
    forced_down: bool = False,
) -> dict[str, Any]:
    if isinstance(sid, int) and call.version >= (2, 53):
        sid = str(uuid.uuid5(_NS, f"service:{host}:{binary}"))
    item = {
        "id": sid,
        "binary": binary,
        "host": host,
        "zone": zone,
        "state": state,
        "status": status,
        "disabled_reason": reason,
        "updated_at": clock.usage_time(updated),
    }
    if call.version >= (2, 11):
        item["forced_down"] = forced_down
    return item
