"""Neutron's network and port notifications as ``neutron.*`` changes.

Enable as ``plugins = neutron.notifications``.  Neutron publishes on the
``neutron`` exchange, topic ``notifications``, ``publisher_id``
``network.<host>``; ``*.end`` payloads hold the resource as the API shows it::

    {"event_type": "port.update.end", "publisher_id": "network.node1",
     "payload": {"port": {"id": "f7c9...", "status": "ACTIVE", ...}}}
    {"event_type": "port.delete.end", "payload": {"port_id": "f7c9..."}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification, Plugin
from synchronizer_plugins.neutron import shapes
from synchronizer_plugins.notification import EntityNotifications

_TYPES: dict[str, str] = {"network": shapes.NETWORK, "port": shapes.PORT}
_SHAPES: dict[str, Callable[[Plugin, Any, str | None], Entity]] = {
    "network": shapes.network,
    "port": shapes.port,
}
_ACTIONS = {"create": Action.CREATE, "update": Action.UPDATE, "delete": Action.DELETE}


class NeutronNotifications(EntityNotifications):
    """Maps ``network.*.end`` and ``port.*.end`` notifications to changes.

    ``{network,port}.{create,update}.end`` carry the resource (``{"port":
    {...}}``, or ``{"ports": [...]}`` after a bulk create) and become
    creates/updates of exactly the collectors' shapes
    (:mod:`synchronizer_plugins.neutron.shapes`); ``*.delete.end`` carry ``<resource>_id``
    (and, on recent releases, the deleted resource) and become deletes.
    Ignored on purpose (never accepted, by the ``event_types`` filter):
    ``*.start`` events (they carry the request body, not a state) and every
    other resource (``subnet``, ``router``, ``floatingip``, ``rbac_policy``,
    ``security_group``...), which this plugin does not model.  Malformed
    payloads raise :class:`InvalidNotification`.  Threading: one
    notification worker thread uses an instance.
    """

    name: ClassVar[str] = "neutron.notifications"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.NETWORK, shapes.PORT)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.NETWORK_DOC, shapes.PORT_DOC)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    default_exchange: ClassVar[str] = "neutron"
    default_topics: ClassVar[tuple[str, ...]] = ("notifications",)
    event_types: ClassVar[tuple[str, ...]] = (r"(network|port)\.(create|update|delete)\.end$",)
    publishers: ClassVar[tuple[str, ...]] = (r"network(\.|$)",)

    def entities(self, notification: Notification) -> list[Entity]:
        resource, verb = _parse(notification.event_type)
        payload = notification.payload
        if not isinstance(payload, Mapping):
            raise ValueError("payload must be an object")
        if verb == "delete":
            return [self._deleted(resource, payload, notification.timestamp)]
        return self._resources(resource, payload, notification.timestamp)

    def action(self, event_type: str) -> Action:
        return _ACTIONS[_parse(event_type)[1]]

    def _resources(self, resource: str, payload: Mapping[str, Any], ts: str) -> list[Entity]:
        build = _SHAPES[resource]
        if resource in payload:
            return [build(self, payload[resource], ts)]
        many = payload.get(f"{resource}s")
        if isinstance(many, list) and many:
            return [build(self, record, ts) for record in many]
        raise ValueError(f"payload has no {resource!r} object")

    def _deleted(self, resource: str, payload: Mapping[str, Any], ts: str) -> Entity:
        key = payload.get(f"{resource}_id")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{resource}_id must be a non-empty string, got {key!r}")
        record = payload.get(resource)
        if isinstance(record, Mapping) and record.get("id") == key:
            return _SHAPES[resource](self, record, ts)
        return self.entity(_TYPES[resource], key, timestamp=ts)


def _parse(event_type: str) -> tuple[str, str]:
    parts = event_type.split(".")
    if len(parts) != 3 or parts[0] not in _TYPES or parts[1] not in _ACTIONS:
        raise InvalidNotification(f"unexpected Neutron event type {event_type!r}")
    return parts[0], parts[1]
