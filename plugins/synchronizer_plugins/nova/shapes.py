"""The normalised shapes of Nova's entity types, shared by poll and push.

Over 400 lines on purpose: one module per service's shapes, so that poll and
push of every Nova type share one definition.

Every Nova entity is built here, from plain facts that the collectors parse
out of API records and the notification plugin parses out of payloads, so a
state seen by a poll and by a notification gives the same fingerprint.  The
rule for what a shape holds: only what *every* source (the servers-detail
record at any supported microversion, the versioned payload and the legacy
payload) carries in a comparable form.

``nova.instance`` (key: server UUID)::

    state       Nova's API status, computed from vm_state and task_state with
                Nova's own table (nova/api/openstack/common.py _STATE_MAP), on
                both sides: ACTIVE, BUILD, SHUTOFF, PAUSED, SUSPENDED, RESCUE,
                RESIZE, VERIFY_RESIZE, REVERT_RESIZE, REBUILD, MIGRATING,
                REBOOT, HARD_REBOOT, PASSWORD, ERROR, SOFT_DELETED, SHELVED,
                SHELVED_OFFLOADED, UNKNOWN; DELETED only on the entity of a delete
    project     the project (tenant) id
    parent      nova.host <compute service host>, none while unscheduled
    relations   (attached, cinder.volume, <volume id>) per attached volume,
                when the plugins' ``volume_relations`` option is on
    properties  name, host, node, availability_zone, flavor (its name), image
                (its id, None when booted from volume), vm_state, task_state,
                user_id, created_at (to the second, ``...SS.000000Z``), metadata

Left out on purpose: power_state, locked, key_name (the legacy payload has
none of them), launched_at and updated_at (the versioned payload drops the
microseconds the database may have rounded), ports (servers-detail has no
port ids: the port→instance edge belongs to ``neutron.port``'s device_id).

``nova.host`` (key: the compute service's host name, as an instance's
``OS-EXT-SRV-ATTR:host``): state ``up`` / ``down`` (the service's liveness,
``down`` when forced down), suffixed ``-disabled`` when the service is
disabled (``up-disabled``, ``down-disabled``); parent ``nova.zone``; properties
status, disabled_reason, forced_down, nodes (hypervisor host names, sorted),
hypervisor_type, host_ip.

``nova.zone`` (key: zone name): state ``available`` / ``unavailable``;
properties hosts (compute hosts Nova lists in the zone, sorted).

Nothing in these shapes is volatile: every property is state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from synchronizer.model import Entity, Ref, Relation
from synchronizer.plugin_base import EntityDoc, Plugin

__all__ = [
    "HOST",
    "HOST_DOC",
    "HOST_STATES",
    "INSTANCE",
    "INSTANCE_DOC",
    "INSTANCE_STATES",
    "VOLATILE",
    "VOLUME",
    "ZONE",
    "ZONE_DOC",
    "Host",
    "Instance",
    "Zone",
    "host_state",
    "instance_entity",
    "instance_properties",
    "instance_status",
    "label",
    "mapping",
    "text",
]

INSTANCE = "nova.instance"
HOST = "nova.host"
ZONE = "nova.zone"
VOLUME = "cinder.volume"
ATTACHED = "attached"
VOLATILE: frozenset[str] = frozenset()

DELETED = "deleted"

# Nova's nova/api/openstack/common.py _STATE_MAP: vm_state -> task_state -> status.
_RESIZING = dict.fromkeys(
    ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish"), "RESIZE"
)
_REBUILDING = dict.fromkeys(
    ("rebuilding", "rebuild_block_device_mapping", "rebuild_spawning"), "REBUILD"
)
_STATE_MAP: dict[str, dict[str | None, str]] = {
    "active": {
        None: "ACTIVE",
        **dict.fromkeys(("rebooting", "reboot_pending", "reboot_started"), "REBOOT"),
        **dict.fromkeys(
            ("rebooting_hard", "reboot_pending_hard", "reboot_started_hard"), "HARD_REBOOT"
        ),
        "updating_password": "PASSWORD",
        **_REBUILDING,
        "migrating": "MIGRATING",
        **_RESIZING,
    },
    "building": {None: "BUILD"},
    "stopped": {None: "SHUTOFF", **_RESIZING, **_REBUILDING},
    "resized": {None: "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {None: "PAUSED", "migrating": "MIGRATING"},
    "suspended": {None: "SUSPENDED"},
    "rescued": {None: "RESCUE"},
    "error": {None: "ERROR", **_REBUILDING},
    "deleted": {None: "DELETED"},
    "soft-delete": {None: "SOFT_DELETED"},
    "shelved": {None: "SHELVED"},
    "shelved_offloaded": {None: "SHELVED_OFFLOADED"},
}


#: Every status :func:`instance_status` gives, in the table's order.
INSTANCE_STATES: tuple[str, ...] = (
    *dict.fromkeys(status for by_task in _STATE_MAP.values() for status in by_task.values()),
    "UNKNOWN",
)


def instance_status(vm_state: str, task_state: str | None) -> str:
    """The API status Nova shows for a vm_state and task_state (UNKNOWN if unmapped)."""
    by_task = _STATE_MAP.get(vm_state)
    if by_task is None:
        return "UNKNOWN"
    return by_task.get(task_state, by_task[None])


def host_state(up: bool, enabled: bool) -> str:
    """``up`` / ``down``, suffixed ``-disabled`` for a disabled service."""
    return ("up" if up else "down") + ("" if enabled else "-disabled")


#: Every state :func:`host_state` gives.
HOST_STATES: tuple[str, ...] = tuple(
    host_state(up, enabled) for enabled in (True, False) for up in (True, False)
)


def text(data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    """A string field; None or "" (Nova writes "no value" both ways) give None.

    Raises ValueError when the field has another type, or is required and empty.
    """
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError(f"expected an object holding {key!r}, got {type(data).__name__}")
    value = data.get(key)
    if type(value) is str and value:  # the common case first: polls convert 100k records
        return value
    if value is None or value == "":
        if required:
            raise ValueError(f"missing {key!r}")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key!r} is a {type(value).__name__}, not a string")
    return value


def label(data: Mapping[str, Any], key: str) -> str | None:
    """A free-text field (a name) as :func:`text` reads it, a number normalised to its text.

    A server named ``12345`` can reach the API (and a notification) as a JSON
    number through a client that parsed the name: the type is unexpected,
    the value is not wrong.  Identifiers and states stay strict.
    """
    value = data.get(key) if isinstance(data, Mapping) else None
    if type(value) in (int, float):  # not bool, which JSON keeps apart
        return str(value)
    return text(data, key)


def mapping(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A dict field ({} when absent or null); raises ValueError for another type."""
    if type(data) is not dict and not isinstance(data, Mapping):
        raise ValueError(f"expected an object holding {key!r}, got {type(data).__name__}")
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{key!r} is a {type(value).__name__}, not an object")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    """The facts a ``nova.instance`` entity is made of, whatever the source.

    ``volumes`` is None when the source does not say which volumes are
    attached (a legacy payload, or a versioned one sent without
    ``[notifications] bdms_in_notifications``), and a tuple otherwise.
    """

    uuid: str
    project: str | None
    vm_state: str
    task_state: str | None = None
    name: str | None = None
    host: str | None = None
    node: str | None = None
    availability_zone: str | None = None
    flavor: str | None = None
    image: str | None = None
    user_id: str | None = None
    created_at: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    volumes: tuple[str, ...] | None = ()

    @property
    def deleted(self) -> bool:
        """Whether this state is the end of the instance (vm_state ``deleted``)."""
        return self.vm_state == DELETED

    @property
    def status(self) -> str:
        return instance_status(self.vm_state, self.task_state)

    def properties(self) -> dict[str, Any]:
        return instance_properties(
            self.name,
            self.host,
            self.node,
            self.availability_zone,
            self.flavor,
            self.image,
            self.vm_state,
            self.task_state,
            self.user_id,
            self.created_at,
            self.metadata,
        )

    def entity(
        self, plugin: Plugin, *, volume_relations: bool, timestamp: str | None = None
    ) -> Entity:
        """The ``nova.instance`` entity, built by ``plugin`` (its source)."""
        return instance_entity(
            plugin,
            volume_relations,
            timestamp,
            self.uuid,
            self.project,
            self.volumes,
            self.properties(),
        )


def instance_properties(
    name: str | None,
    host: str | None,
    node: str | None,
    availability_zone: str | None,
    flavor: str | None,
    image: str | None,
    vm_state: str,
    task_state: str | None,
    user_id: str | None,
    created_at: str | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    """The properties of a ``nova.instance`` (the shape's one definition)."""
    return {
        "name": name,
        "host": host,
        "node": node,
        "availability_zone": availability_zone,
        "flavor": flavor,
        "image": image,
        "vm_state": vm_state,
        "task_state": task_state,
        "user_id": user_id,
        "created_at": created_at,
        "metadata": dict(metadata),
    }


_HOST_REFS: dict[str, Ref] = {}


def _host_ref(host: str) -> Ref:
    # Hundreds of instances share a host: one shared (immutable) Ref each.
    ref = _HOST_REFS.get(host)
    if ref is None:
        if len(_HOST_REFS) >= 100_000:
            _HOST_REFS.clear()
        ref = _HOST_REFS[host] = Ref(HOST, host)
    return ref


def instance_entity(
    plugin: Plugin,
    volume_relations: bool,
    timestamp: str | None,
    uuid: str,
    project: str | None,
    volumes: tuple[str, ...] | None,
    properties: dict[str, Any],
) -> Entity:
    """The ``nova.instance`` entity of these facts, built by ``plugin`` (its source).

    ``properties`` is what :func:`instance_properties` gives (state and
    parent are read from it).  Positional, for the poll's hot path (100,000
    servers a cycle), which calls it straight from a servers-detail record;
    :meth:`Instance.entity` is the same with the facts of an
    :class:`Instance`.  Equivalent to ``plugin.entity(...)`` with the fields
    of the docstring at the top.
    """
    relations: tuple[Relation, ...] = ()
    if volume_relations and volumes:
        ids = sorted(set(volumes)) if len(volumes) > 1 else volumes
        relations = tuple(Relation(ATTACHED, VOLUME, v) for v in ids)
    host = properties["host"]
    return Entity(
        INSTANCE,
        uuid,
        instance_status(properties["vm_state"], properties["task_state"]),
        project,
        _host_ref(host) if host else None,
        relations,
        properties,
        timestamp or plugin.observed_at,
        plugin.source,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Host:
    """The facts of a ``nova.host``: one compute service and its hypervisor nodes."""

    host: str
    zone: str | None
    up: bool
    enabled: bool
    disabled_reason: str | None = None
    forced_down: bool | None = None
    nodes: tuple[str, ...] = ()
    hypervisor_type: str | None = None
    host_ip: str | None = None

    def entity(self, plugin: Plugin, *, timestamp: str | None = None) -> Entity:
        return plugin.entity(
            HOST,
            self.host,
            state=host_state(self.up, self.enabled),
            parent=(ZONE, self.zone) if self.zone else None,
            properties={
                "status": "enabled" if self.enabled else "disabled",
                "disabled_reason": self.disabled_reason,
                "forced_down": self.forced_down,
                "nodes": sorted(set(self.nodes)),
                "hypervisor_type": self.hypervisor_type,
                "host_ip": self.host_ip,
            },
            timestamp=timestamp,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Zone:
    """The facts of a ``nova.zone``."""

    name: str
    available: bool
    hosts: Iterable[str] = ()

    def entity(self, plugin: Plugin, *, timestamp: str | None = None) -> Entity:
        return plugin.entity(
            ZONE,
            self.name,
            state="available" if self.available else "unavailable",
            properties={"hosts": sorted(set(self.hosts))},
            timestamp=timestamp,
        )


# -- the reference (doc/entities.md is generated from these) ---------------------------

INSTANCE_DOC = EntityDoc(
    type=INSTANCE,
    summary="A Nova server (a virtual machine, or an instance on a bare metal node), "
    "of any project.",
    key="server UUID (`id`)",
    state="Nova's API status, computed from vm_state and task_state with Nova's own "
    "table (as `openstack server list` shows it); DELETED only on the entity of a delete",
    states=INSTANCE_STATES,
    project="the project that owns the server (`tenant_id`)",
    parent=HOST,
    parent_meaning="the compute host running it (`OS-EXT-SRV-ATTR:host`); "
    "none while it is not scheduled",
    relations=(
        (ATTACHED, VOLUME, "each attached volume, when the `volume_relations` option is on"),
    ),
    properties={
        "name": "server name",
        "host": "compute host name (`OS-EXT-SRV-ATTR:host`), the parent's key",
        "node": "hypervisor node name (`OS-EXT-SRV-ATTR:hypervisor_hostname`)",
        "availability_zone": "availability zone (`OS-EXT-AZ:availability_zone`)",
        "flavor": "flavor name (the name it was built with from microversion 2.47)",
        "image": "image UUID; null when booted from a volume",
        "vm_state": "Nova's vm_state (`active`, `stopped`, `error`...)",
        "task_state": "Nova's task_state (`spawning`, `rebooting`...); null when idle",
        "user_id": "the user who created it",
        "created_at": "creation time (UTC, to the second)",
        "metadata": "user metadata (an object of strings)",
    },
    volatile=VOLATILE,
)

HOST_DOC = EntityDoc(
    type=HOST,
    summary="A compute host: one nova-compute service and its hypervisor nodes.",
    key="the compute service's host name (what an instance's `OS-EXT-SRV-ATTR:host` says)",
    state="the service's liveness (`down` when forced down), suffixed `-disabled` when an "
    "operator disabled it",
    states=HOST_STATES,
    parent=ZONE,
    parent_meaning="its availability zone; none when Nova reports no zone",
    properties={
        "status": "`enabled` or `disabled` (the service's administrative status)",
        "disabled_reason": "why an operator disabled the service, or null",
        "forced_down": "whether an operator forced the service down (null before "
        "microversion 2.11)",
        "nodes": "hypervisor node names, sorted (one for libvirt, many for ironic)",
        "hypervisor_type": "hypervisor type of its first node (`QEMU`, `ironic`...)",
        "host_ip": "host IP of its first node",
    },
    volatile=VOLATILE,
)

ZONE_DOC = EntityDoc(
    type=ZONE,
    summary="A Nova availability zone (Nova's internal zone of non-compute services is left out).",
    key="zone name",
    state="whether Nova reports the zone available",
    states=("available", "unavailable"),
    properties={
        "hosts": "host names Nova lists in the zone (hosts with an enabled service), sorted",
    },
    volatile=VOLATILE,
)
