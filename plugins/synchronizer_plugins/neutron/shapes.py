"""The normalised shapes of ``neutron.network`` and ``neutron.port``.

Neutron's notifications carry the resource exactly as its API shows it to the
user who made the request (``{"network": {...}}``, ``{"port": {...}}``), so a
record and a payload go through the same functions here.  The API view of
that user hides admin-only attributes (``binding:*``, ``provider:*``), so the
shapes leave those out: a notification about a user's port must fingerprint
like the admin poll of the same port.

Network: key ``id``; state ``status`` (``ACTIVE``, ``DOWN``, ``BUILD``,
``ERROR``); project ``project_id`` (or ``tenant_id``); no parent; properties
``name``, ``description``, ``admin_state_up``, ``shared``, ``mtu``,
``router:external``, ``port_security_enabled``, ``subnets`` (sorted), ``tags``
(sorted), ``created_at``.

Port: key ``id``; state ``status``; project as above (``None`` for the ports
Neutron owns itself, whose project is ``""``); parent the
``neutron.network`` ``network_id``; relation ``(attached, nova.instance,
device_id)`` when ``device_owner`` starts with ``compute:`` (the same verb as
a volume attached to an instance); properties ``name``, ``description``,
``admin_state_up``, ``mac_address``, ``device_id``, ``device_owner``,
``fixed_ips`` (sorted ``{subnet_id, ip_address}``), ``security_groups``
(sorted), ``port_security_enabled``, ``tags`` (sorted), ``created_at``.

Both carry ``revision_number`` and ``updated_at`` as *volatile* properties
(:data:`VOLATILE`): they move on every write, even one that changes nothing
the shape shows, and old Neutron releases leave them out of notifications.
Timestamps are UTC at second precision (Neutron stores no fractions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc, Plugin
from synchronizer_plugins import fields

NETWORK = "neutron.network"
PORT = "neutron.port"
INSTANCE = "nova.instance"
ATTACHED = "attached"
VOLATILE: frozenset[str] = frozenset({"revision_number", "updated_at"})

_NETWORK_FIELDS = (
    "name",
    "description",
    "admin_state_up",
    "shared",
    "mtu",
    "router:external",
    "port_security_enabled",
)
_PORT_FIELDS = (
    "name",
    "description",
    "admin_state_up",
    "mac_address",
    "device_id",
    "device_owner",
    "port_security_enabled",
)


#: Neutron's network statuses (neutron_lib.constants NET_STATUS_*).
NETWORK_STATES: tuple[str, ...] = ("ACTIVE", "DOWN", "BUILD", "ERROR")
#: Neutron's port statuses (neutron_lib.constants PORT_STATUS_*).
PORT_STATES: tuple[str, ...] = ("ACTIVE", "DOWN", "BUILD", "ERROR", "N/A")

_PROJECT = "the project that owns it (`project_id`, or `tenant_id`)"
_COMMON_PROPERTIES = {
    "name": "name",
    "description": "description",
    "admin_state_up": "administrative state (true: up)",
    "tags": "tags, sorted",
    "created_at": "creation time (UTC, to the second)",
    "updated_at": "time of the last write (UTC, to the second)",
    "revision_number": "Neutron's revision counter, moved by every write",
}

NETWORK_DOC = EntityDoc(
    type=NETWORK,
    summary="A Neutron network, of any project.",
    key="network UUID (`id`)",
    state="Neutron's network status",
    states=NETWORK_STATES,
    project=_PROJECT,
    properties={
        **_COMMON_PROPERTIES,
        "shared": "whether every project may use it",
        "mtu": "maximum transmission unit, in bytes",
        "router:external": "whether it is external (floating IPs and router gateways)",
        "subnets": "subnet UUIDs, sorted",
        "port_security_enabled": "the port security its new ports get by default",
    },
    volatile=VOLATILE,
)

PORT_DOC = EntityDoc(
    type=PORT,
    summary="A Neutron port: a virtual NIC, a router interface, a DHCP port...",
    key="port UUID (`id`)",
    state="Neutron's port status",
    states=PORT_STATES,
    project=_PROJECT + "; null for the ports Neutron owns itself",
    parent=NETWORK,
    parent_meaning="the network it is on (`network_id`)",
    relations=(
        (
            ATTACHED,
            INSTANCE,
            "the server it is plugged into (`device_id`), for `compute:*` device owners",
        ),
    ),
    properties={
        **_COMMON_PROPERTIES,
        "mac_address": "MAC address",
        "device_id": "UUID of what uses it (a server, a router...), or empty",
        "device_owner": "what kind of device uses it (`compute:<zone>`, `network:dhcp`, "
        "`network:router_interface`...)",
        "fixed_ips": "its addresses, `{subnet_id, ip_address}` objects, sorted",
        "security_groups": "security group UUIDs, sorted",
        "port_security_enabled": "whether port security (security groups, anti-spoofing) "
        "applies to it",
    },
    volatile=VOLATILE,
)


def network(plugin: Plugin, record: Any, timestamp: str | None = None) -> Entity:
    """The ``neutron.network`` entity of an API record or a notification's ``network``."""
    record = fields.mapping(record, "network")
    props = {field: record.get(field) for field in _NETWORK_FIELDS}
    props["subnets"] = fields.sorted_strings(record.get("subnets"), "subnets")
    props.update(_common(record))
    return plugin.entity(
        NETWORK,
        fields.required_str(record, "id"),
        state=record.get("status"),
        project=_project(record),
        properties=props,
        timestamp=timestamp,
    )


def port(plugin: Plugin, record: Any, timestamp: str | None = None) -> Entity:
    """The ``neutron.port`` entity of an API record or a notification's ``port``."""
    record = fields.mapping(record, "port")
    props = {field: record.get(field) for field in _PORT_FIELDS}
    props["fixed_ips"] = _fixed_ips(record.get("fixed_ips"))
    props["security_groups"] = fields.sorted_strings(
        record.get("security_groups"), "security_groups"
    )
    props.update(_common(record))
    network_id = record.get("network_id")
    return plugin.entity(
        PORT,
        fields.required_str(record, "id"),
        state=record.get("status"),
        project=_project(record),
        parent=(NETWORK, network_id) if isinstance(network_id, str) and network_id else None,
        relations=_instance(record),
        properties=props,
        timestamp=timestamp,
    )


def _common(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "tags": fields.sorted_strings(record.get("tags"), "tags"),
        "created_at": fields.seconds(record.get("created_at")),
        "updated_at": fields.seconds(record.get("updated_at")),
        "revision_number": record.get("revision_number"),
    }


def _instance(record: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    owner = record.get("device_owner")
    device = record.get("device_id")
    if isinstance(owner, str) and owner.startswith("compute:") and isinstance(device, str):
        return [(ATTACHED, INSTANCE, device)] if device else []
    return []


def _fixed_ips(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(ip, Mapping) for ip in value):
        raise ValueError(f"fixed_ips must be a list of objects, got {value!r}")
    ips = [{"subnet_id": ip.get("subnet_id"), "ip_address": ip.get("ip_address")} for ip in value]
    return sorted(ips, key=lambda ip: (str(ip["subnet_id"]), str(ip["ip_address"])))


def _project(record: Mapping[str, Any]) -> str | None:
    project = record.get("project_id") or record.get("tenant_id")
    return project if isinstance(project, str) and project else None
