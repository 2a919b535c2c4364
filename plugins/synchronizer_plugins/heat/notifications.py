"""Heat's stack notifications as ``heat.stack`` changes.

Enable as ``plugins = heat.notifications``.  Heat publishes on the ``heat``
exchange, topic ``notifications``, ``publisher_id`` ``orchestration.<host>``,
one event per stack state change, ``orchestration.stack.<action>.<phase>``
(``start`` while in progress, ``end`` when complete, ``error`` when failed)::

    {"event_type": "orchestration.stack.create.end",
     "publisher_id": "orchestration.node1",
     "payload": {"stack_identity": "arn:openstack:heat::4fd4...:stacks/web/3095...",
                 "stack_name": "web", "state": "CREATE_COMPLETE",
                 "tenant_id": "4fd4...", ...}}
"""

from __future__ import annotations

from typing import ClassVar

from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification
from synchronizer_plugins.heat import shapes
from synchronizer_plugins.notification import EntityNotifications


def action_of(event_type: str) -> Action:
    """``orchestration.stack.delete.end`` deletes, ``create.*`` creates, the rest update."""
    parts = event_type.split(".")
    if parts[2:] == ["delete", "end"]:
        return Action.DELETE
    if parts[2:3] == ["create"]:
        return Action.CREATE
    return Action.UPDATE


class HeatNotifications(EntityNotifications):
    """Maps ``orchestration.stack.*`` notifications to ``heat.stack`` changes.

    Every stack action (``create``, ``update``, ``delete``, ``suspend``,
    ``resume``, ``check``, ``rollback``, ``snapshot``, ``restore``,
    ``adopt``...) in every phase (``start``, ``end``, ``error``) carries the
    stack's state then (``state`` = the API's ``stack_status``, e.g.
    ``CREATE_COMPLETE``) and becomes a change of exactly the collector's
    shape (:mod:`synchronizer_plugins.heat.shapes`); ``orchestration.stack.delete.end``
    is a delete.  Ignored on purpose (never accepted, by the ``event_types``
    filter): ``orchestration.autoscaling.*`` (a scaling decision, not a
    stack state: the nested stack it updates sends its own
    ``orchestration.stack.*``).  A payload without a stack ARN
    (``stack_identity``) or with wrongly typed fields raises
    :class:`InvalidNotification`.  Threading: one notification worker thread
    uses an instance.
    """

    name: ClassVar[str] = "heat.notifications"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.STACK,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    default_exchange: ClassVar[str] = "heat"
    default_topics: ClassVar[tuple[str, ...]] = ("notifications",)
    event_types: ClassVar[tuple[str, ...]] = (r"orchestration\.stack\.[a-z_]+\.(start|end|error)$",)
    publishers: ClassVar[tuple[str, ...]] = (r"orchestration(\.|$)",)

    def entities(self, notification: Notification) -> list[Entity]:
        return [shapes.from_payload(self, notification.payload, notification.timestamp)]

    def action(self, event_type: str) -> Action:
        return action_of(event_type)
