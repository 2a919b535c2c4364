"""Cinder's legacy volume notifications as ``cinder.volume`` changes.

Enable as ``plugins = cinder.notifications``.  Cinder publishes unversioned
notifications on the ``cinder`` exchange, topic ``notifications``, with
``publisher_id`` ``volume.<host>`` and flat payloads (``volume_id``,
``tenant_id``, ``status``, ``display_name``, ``size``,
``volume_attachment``...), for example::

    {"event_type": "volume.attach.end", "publisher_id": "volume.node1@lvm",
     "payload": {"volume_id": "f54b...", "status": "in-use", "tenant_id": "1816...",
                 "volume_attachment": [{"instance_uuid": "ae81...",
                                        "attach_status": "attached"}], ...}}
"""

from __future__ import annotations

from typing import ClassVar

from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification
from synchronizer_plugins.cinder import shapes
from synchronizer_plugins.notification import EntityNotifications


def action_of(event_type: str) -> Action:
    """The action a ``volume.*`` event type implies.

    ``volume.delete.end`` deletes; ``volume.create.*`` creates; every other
    volume event (``update``, ``attach``, ``detach``, ``resize``, ``retype``,
    ``extend``, ``manage_existing``, the ``volume.exists`` audit, the
    ``.start``/``.end``/``.error`` phases, ``delete.start``...) reports the
    volume's current state, an update.
    """
    parts = event_type.split(".")
    if parts[1:] == ["delete", "end"]:
        return Action.DELETE
    if parts[1:2] == ["create"]:
        return Action.CREATE
    return Action.UPDATE


class CinderNotifications(EntityNotifications):
    """Maps ``volume.*`` notifications to ``cinder.volume`` changes.

    The entity has exactly the shape of
    :class:`synchronizer_plugins.cinder.volumes.VolumeCollector`'s (see
    :mod:`synchronizer_plugins.cinder.shapes`), stamped with the notification's
    timestamp.  Ignored on purpose (never accepted, by the ``event_types``
    filter): ``snapshot.*``, ``backup.*``, ``capacity.*``, ``volume_type.*``,
    ``consistencygroup.*``/``group.*``, ``scheduler.*`` -- they describe no
    volume state.  A payload that is not an object, lacks ``volume_id`` or has
    fields of the wrong type raises :class:`InvalidNotification`.
    Threading: one notification worker thread uses an instance.
    """

    name: ClassVar[str] = "cinder.notifications"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.VOLUME,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    default_exchange: ClassVar[str] = "cinder"
    default_topics: ClassVar[tuple[str, ...]] = ("notifications",)
    event_types: ClassVar[tuple[str, ...]] = (r"volume\.",)
    publishers: ClassVar[tuple[str, ...]] = (r"volume(\.|$)",)

    def entities(self, notification: Notification) -> list[Entity]:
        return [shapes.from_payload(self, notification.payload, notification.timestamp)]

    def action(self, event_type: str) -> Action:
        return action_of(event_type)
