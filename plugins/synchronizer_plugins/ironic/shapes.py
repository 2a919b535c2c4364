"""The one normalised shape of an ``ironic.node``, from the API or a notification.

Ironic's node view (``GET /v1/nodes/detail``, API 1.65) and the ``data`` of
its versioned node payloads (``NodePayload`` 1.x and its subclasses
``NodeCRUDPayload``, ``NodeSetPowerStatePayload``,
``NodeSetProvisionStatePayload``, ``NodeCorrectedPowerStatePayload``) share
most field names, so one function maps both:

* key: ``uuid``;
* state: ``provision_state`` (``available``, ``active``, ``deploying``,
  ``clean failed``...), the lifecycle the other services care about; the
  power state and the maintenance flag are properties, since a node is
  e.g. ``active`` and ``power off`` at once;
* project: ``owner``, else ``lessee`` (``None`` when neither is set);
* parent: none (``chassis_uuid`` and ``conductor`` are missing from most
  payloads); relation ``(hosts, nova.instance, instance_uuid)`` when set;
* properties: ``name``, ``description``, ``driver``, ``power_state``,
  ``target_power_state``, ``target_provision_state``, ``maintenance``,
  ``maintenance_reason``, ``fault``, ``console_enabled``, ``protected``,
  ``protected_reason``, ``retired``, ``retired_reason``, ``last_error``,
  ``resource_class``, ``conductor_group``, ``owner``, ``lessee``, ``traits``
  (sorted names), ``properties`` (Ironic's hardware dict), ``created_at``
  (UTC, second precision); volatile: ``updated_at`` and
  ``provision_updated_at`` (they move without the state moving).

Left out on purpose: what only one side has (``driver_info``,
``instance_info``, ``driver_internal_info`` may hold secrets and are masked
differently; ``chassis_uuid``, ``conductor``, ``allocation_uuid``, links)
and per-interface driver settings.  Booleans are normalised (a payload's
``retired: null`` is ``False``, as the API shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc, Plugin
from synchronizer_plugins import fields

NODE = "ironic.node"
INSTANCE = "nova.instance"
HOSTS = "hosts"
VOLATILE: frozenset[str] = frozenset({"updated_at", "provision_updated_at"})

_PLAIN = (
    "name",
    "description",
    "driver",
    "power_state",
    "target_power_state",
    "target_provision_state",
    "maintenance_reason",
    "fault",
    "protected_reason",
    "retired_reason",
    "last_error",
    "resource_class",
    "conductor_group",
    "owner",
    "lessee",
)
_FLAGS = ("maintenance", "console_enabled", "protected", "retired")


#: Ironic's provision states (ironic/common/states.py), in lifecycle order.
STATES: tuple[str, ...] = (
    "enroll",
    "verifying",
    "manageable",
    "inspecting",
    "inspect wait",
    "inspect failed",
    "cleaning",
    "clean wait",
    "clean hold",
    "clean failed",
    "available",
    "deploying",
    "wait call-back",
    "deploy hold",
    "deploy failed",
    "active",
    "deleting",
    "error",
    "adopting",
    "adopt failed",
    "rescuing",
    "rescue wait",
    "rescue",
    "rescue failed",
    "unrescuing",
    "unrescue failed",
    "servicing",
    "service wait",
    "service hold",
    "service failed",
)

DOC = EntityDoc(
    type=NODE,
    summary="An Ironic bare metal node.",
    key="node UUID (`uuid`)",
    state="Ironic's provision state (the power state and maintenance are properties)",
    states=STATES,
    project="the node's `owner`, else its `lessee`; null when neither is set",
    relations=((HOSTS, INSTANCE, "the Nova instance deployed on it (`instance_uuid`)"),),
    properties={
        "name": "node name",
        "description": "description",
        "driver": "hardware type (`ipmi`, `redfish`...)",
        "power_state": "`power on`, `power off`, or null when unknown",
        "target_power_state": "the power state being set, or null",
        "target_provision_state": "the provision state being reached, or null",
        "maintenance": "whether the node is in maintenance",
        "maintenance_reason": "why it is in maintenance, or null",
        "fault": "the fault that put it into maintenance (`power failure`, "
        "`clean failure`...), or null",
        "console_enabled": "whether its serial console is enabled",
        "protected": "whether it is protected from undeploying and rebuilding",
        "protected_reason": "why it is protected, or null",
        "retired": "whether it is retired (not to be deployed again)",
        "retired_reason": "why it is retired, or null",
        "last_error": "the last error Ironic recorded, or null",
        "resource_class": "resource class (what Nova's flavors ask for)",
        "conductor_group": "conductor group managing it",
        "owner": "owning project, or null",
        "lessee": "project leasing it, or null",
        "traits": "trait names, sorted",
        "properties": "Ironic's hardware properties (`cpus`, `memory_mb`, `capabilities`...)",
        "created_at": "creation time (UTC, to the second)",
        "updated_at": "time of the node's last update (UTC, to the second)",
        "provision_updated_at": "time of the last provision state change (UTC, to the second)",
    },
    volatile=VOLATILE,
)


def node(plugin: Plugin, record: Any, timestamp: str | None = None) -> Entity:
    """The ``ironic.node`` entity of an API node or a payload's ``ironic_object.data``.

    Raises ValueError when the record is unusable (not an object, no ``uuid``,
    wrongly typed fields).
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"node must be an object, got {type(record).__name__}")
    instance = record.get("instance_uuid")
    return plugin.entity(
        NODE,
        fields.required_str(record, "uuid"),
        state=record.get("provision_state"),
        project=_project(record),
        relations=[(HOSTS, INSTANCE, instance)] if isinstance(instance, str) and instance else [],
        properties=_properties(record),
        timestamp=timestamp,
    )


def _properties(record: Mapping[str, Any]) -> dict[str, Any]:
    props = {field: record.get(field) for field in _PLAIN}
    props.update({flag: bool(record.get(flag)) for flag in _FLAGS})
    props["traits"] = _traits(record.get("traits"))
    props["properties"] = _dict(record.get("properties"), "properties")
    props["created_at"] = fields.seconds(record.get("created_at"))
    props["updated_at"] = fields.seconds(record.get("updated_at"))
    props["provision_updated_at"] = fields.seconds(record.get("provision_updated_at"))
    return props


def _traits(value: Any) -> list[str]:
    """Trait names, sorted; the API may give strings or ``{"trait": name}`` objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"traits must be a list, got {value!r}")
    names = [t.get("trait") if isinstance(t, Mapping) else t for t in value]
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"traits must be names, got {value!r}")
    return sorted(names)


def _dict(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{field} must be an object, got {value!r}")
    return dict(value)


def _project(record: Mapping[str, Any]) -> str | None:
    for field in ("owner", "lessee"):
        value = record.get(field)
        if isinstance(value, str) and value:
            return value
    return None
