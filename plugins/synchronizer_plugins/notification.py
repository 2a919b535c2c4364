"""What the services' notification plugins share: a notification states entities.

Cinder, Neutron, Ironic and Heat notifications each carry the whole state of
one or more resources, in the collectors' shape once converted; what differs
is how a payload maps to entities and what an event type does to them.  A
plugin says just that::

    class VolumeNotifications(EntityNotifications):
        name = "cinder.notifications"
        event_types = (r"volume\\.",)

        def entities(self, notification):
            return [shapes.from_payload(self, notification.payload, notification.timestamp)]

        def action(self, event_type):
            return Action.DELETE if event_type.endswith(".delete.end") else Action.UPDATE

Loads no HTTP client: notification workers need none.
"""

from __future__ import annotations

import abc

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Change, Entity
from synchronizer.plugin_base import Notification, NotificationPlugin

__all__ = ["EntityNotifications"]


class EntityNotifications(NotificationPlugin):
    """A notification plugin whose notifications state entities of the collectors' shapes.

    Contract: :meth:`entities` gives the entities one accepted notification
    states (none when it states no stored resource), raising ValueError for
    a malformed payload, or :class:`InvalidNotification` itself;
    :meth:`action` gives what its event type does to them.  :meth:`convert`
    makes one change of that action per entity, and turns a ValueError into
    an :class:`InvalidNotification` naming the event type.  Threading: one
    notification worker thread uses an instance.
    """

    def convert(self, notification: Notification) -> list[Change]:
        try:
            entities = self.entities(notification)
        except ValueError as exc:
            raise InvalidNotification(f"{notification.event_type}: {exc}") from exc
        action = self.action(notification.event_type)
        return [self.change(action, entity) for entity in entities]

    @abc.abstractmethod
    def entities(self, notification: Notification) -> list[Entity]:
        """The entities the notification states; ValueError if its payload is malformed."""

    @abc.abstractmethod
    def action(self, event_type: str) -> Action:
        """What a notification of this event type does to the entities it states."""
