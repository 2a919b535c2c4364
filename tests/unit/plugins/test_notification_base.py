"""EntityNotifications: the convert skeleton the services' notification plugins share."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from oslo_config import cfg

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Entity
from synchronizer.plugin_base import Notification
from synchronizer_plugins.notification import EntityNotifications

TIME = "2024-05-06T07:08:09.000000Z"


class Racks(EntityNotifications):
    """States one ``dc.rack`` per item of ``payload["racks"]``; ``rack.gone`` deletes."""

    name: ClassVar[str] = "dc.notifications"

    def entities(self, notification: Notification) -> list[Entity]:
        payload = notification.payload
        if payload == "stub":
            raise InvalidNotification("a stub payload")
        if not isinstance(payload, dict):
            raise ValueError("payload must be an object")
        return [
            self.entity("dc.rack", key, state="up", timestamp=notification.timestamp)
            for key in payload["racks"]
        ]

    def action(self, event_type: str) -> Action:
        return Action.DELETE if event_type == "rack.gone" else Action.UPDATE


def convert(event_type: str, payload: Any) -> list:
    conf = cfg.ConfigOpts()
    Racks.register_options(conf, Racks.name)
    conf(args=[])
    return Racks(conf).convert(Notification(event_type, payload, timestamp=TIME))


@pytest.mark.parametrize(
    ("event_type", "action"), [("rack.moved", "update"), ("rack.gone", "delete")]
)
def test_each_entity_becomes_a_change_of_the_event_types_action(event_type, action):
    """One change per stated entity, all of the action the event type implies, stamped with it."""
    changes = convert(event_type, {"racks": ["r1", "r2"]})
    assert [(str(c.action), c.key, c.entity.timestamp) for c in changes] == [
        (action, "r1", TIME),
        (action, "r2", TIME),
    ]


def test_a_notification_stating_no_entity_is_no_change():
    """A notification about nothing stored converts to no change at all."""
    assert convert("rack.moved", {"racks": []}) == []


def test_a_malformed_payload_is_invalid_and_names_the_event_type():
    """A ValueError from the mapping becomes InvalidNotification prefixed with the event type."""
    with pytest.raises(InvalidNotification, match=r"^rack\.moved: payload must be an object$"):
        convert("rack.moved", "text")


def test_an_invalid_notification_passes_unchanged():
    """InvalidNotification raised by the mapping itself keeps its own message."""
    with pytest.raises(InvalidNotification, match=r"^a stub payload$"):
        convert("rack.moved", "stub")
