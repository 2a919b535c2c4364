"""Ironic's versioned node notifications as ``ironic.node`` changes.

Enable as ``plugins = ironic.notifications``.  Ironic publishes versioned
notifications on the ``ironic`` exchange, topic
``ironic_versioned_notifications``, ``publisher_id`` ``ironic-api.<host>`` or
``ironic-conductor.<host>``; the payload wraps an object::

    {"event_type": "baremetal.node.power_set.end",
     "publisher_id": "ironic-conductor.node1",
     "payload": {"ironic_object.namespace": "ironic",
                 "ironic_object.name": "NodeSetPowerStatePayload",
                 "ironic_object.version": "1.15",
                 "ironic_object.data": {"uuid": "1be2...", "power_state": "power on", ...}}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification
from synchronizer_plugins.ironic import shapes
from synchronizer_plugins.notification import EntityNotifications

SUPPORTED_MAJOR = 1
_NODE_PAYLOAD = re.compile(r"Node[A-Za-z]*Payload$")
_VERSION = re.compile(r"(\d+)\.(\d+)$")


# Ironic stores a new node between create.start and create.end; create.error
# means it never was stored, so neither describes a node that exists.
UNSTORED = frozenset({"baremetal.node.create.start", "baremetal.node.create.error"})


def action_of(event_type: str) -> Action:
    """``baremetal.node.delete.end`` deletes, ``create.end`` creates, the rest update."""
    if event_type == "baremetal.node.delete.end":
        return Action.DELETE
    if event_type == "baremetal.node.create.end":
        return Action.CREATE
    return Action.UPDATE


def unwrap(payload: Any) -> Mapping[str, Any]:
    """The ``ironic_object.data`` of a node payload of a supported version.

    Raises InvalidNotification for anything else: not an object, another
    namespace, a payload class that is not a node's, a malformed version or
    a major version other than 1 (a new major means renamed or retyped
    fields, which this plugin cannot know).
    """
    if not isinstance(payload, Mapping):
        raise InvalidNotification("payload must be an object")
    namespace = payload.get("ironic_object.namespace")
    if namespace != "ironic":
        raise InvalidNotification(f"payload namespace must be 'ironic', got {namespace!r}")
    name = payload.get("ironic_object.name")
    if not isinstance(name, str) or not _NODE_PAYLOAD.match(name):
        raise InvalidNotification(f"not a node payload: {name!r}")
    version = payload.get("ironic_object.version")
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise InvalidNotification(f"malformed payload version {version!r}")
    if int(match.group(1)) != SUPPORTED_MAJOR:
        raise InvalidNotification(f"unsupported {name} major version {version}")
    data = payload.get("ironic_object.data")
    if not isinstance(data, Mapping):
        raise InvalidNotification("ironic_object.data must be an object")
    return data


class IronicNotifications(EntityNotifications):
    """Maps ``baremetal.node.*`` notifications to ``ironic.node`` changes.

    Every node event (``create``, ``update``, ``delete``, ``power_set``,
    ``power_state_corrected``, ``provision_set``, ``maintenance_set``,
    ``console_set``, ``console_restore``... in any phase) carries the whole
    node after (or, for ``.start``, before) the operation, so each becomes a
    change of exactly the collector's shape (:mod:`synchronizer_plugins.ironic.shapes`);
    ``baremetal.node.delete.end`` is a delete.  ``create.start`` and
    ``create.error`` are converted to nothing (the node is not, or never
    was, stored: a change would announce a node no listing will ever show).
    Ignored on purpose (never accepted, by the ``event_types`` filter):
    ``baremetal.port.*``,
    ``portgroup``, ``chassis``, ``volumeconnector``, ``volumetarget``,
    ``deploy_template``, ``allocation`` events -- they describe other
    objects, which this plugin does not model.  Malformed payloads and
    unknown major versions raise :class:`InvalidNotification`.  Threading:
    one notification worker thread uses an instance.
    """

    name: ClassVar[str] = "ironic.notifications"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.NODE,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    default_exchange: ClassVar[str] = "ironic"
    default_topics: ClassVar[tuple[str, ...]] = ("ironic_versioned_notifications",)
    event_types: ClassVar[tuple[str, ...]] = (r"baremetal\.node\.",)
    publishers: ClassVar[tuple[str, ...]] = (r"ironic-",)

    def entities(self, notification: Notification) -> list[Entity]:
        data = unwrap(notification.payload)
        if notification.event_type in UNSTORED:
            return []
        return [shapes.node(self, data, notification.timestamp)]

    def action(self, event_type: str) -> Action:
        return action_of(event_type)
