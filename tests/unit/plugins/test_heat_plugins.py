"""The Heat stack shape and the notification plugin."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action
from synchronizer.plugin_base import Notification
from synchronizer_plugins import openstack
from synchronizer_plugins.heat import shapes
from synchronizer_plugins.heat.notifications import HeatNotifications
from synchronizer_plugins.heat.stacks import StackCollector

STACK_ID = "3095aefc-09fb-4bc7-b1f0-f21a304e864c"
PROJECT = "eb1c63a4f77141548385f113a28f0f52"

API_STACK: dict[str, Any] = {
    "id": STACK_ID,
    "stack_name": "web",
    "stack_status": "UPDATE_COMPLETE",
    "stack_status_reason": "Stack UPDATE completed successfully",
    "description": "web tier",
    "creation_time": "2024-06-03T20:59:46Z",
    "updated_time": "2024-06-04T08:00:00Z",
    "deletion_time": None,
    "tags": ["prod", "app"],
    "project": PROJECT,
    "parent": None,
    "stack_owner": None,
    "stack_user_project_id": "71510cbd",
    "links": [{"rel": "self", "href": f"http://heat:8004/v1/{PROJECT}/stacks/web/{STACK_ID}"}],
}

# The same state as heat.engine.api.format_notification_body describes it.
PAYLOAD: dict[str, Any] = {
    "tenant_id": PROJECT,
    "user_id": "admin",
    "username": "admin",
    "user_identity": "u1",
    "stack_identity": f"arn:openstack:heat::{PROJECT}:stacks/web/{STACK_ID}",
    "stack_name": "web",
    "state": "UPDATE_COMPLETE",
    "state_reason": "Stack UPDATE completed successfully",
    "create_at": "2024-06-03T20:59:46",
    "updated_at": "2024-06-04T08:00:01.5",
    "tags": ["app", "prod"],
    "description": "web tier",
}


def make(cls: type, **overrides: Any) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group=cls.name)
    return cls(conf)


@pytest.fixture
def plugin() -> HeatNotifications:
    return make(HeatNotifications)


def notify(plugin: HeatNotifications, event_type: str, body: Any) -> list:
    note = Notification(event_type, body, "orchestration.h1", timestamp="2024-06-04 08:00:02")
    return plugin.convert(note)


def test_stack_maps_to_the_normalised_shape():
    """An API stack becomes a heat.stack in its stack_status, in its project."""
    entity = shapes.from_api(make(StackCollector), API_STACK)
    assert (entity.type, entity.key, entity.state, entity.project) == (
        "heat.stack",
        STACK_ID,
        "UPDATE_COMPLETE",
        PROJECT,
    )
    assert entity.properties == {
        "name": "web",
        "description": "web tier",
        "status_reason": "Stack UPDATE completed successfully",
        "tags": ["app", "prod"],
        "created_at": "2024-06-03T20:59:46.000000Z",
        "updated_at": "2024-06-04T08:00:00.000000Z",
    }


def test_project_falls_back_to_the_self_link():
    """Without a project field the project comes from the stack's self link."""
    record = {k: v for k, v in API_STACK.items() if k != "project"}
    assert shapes.from_api(make(StackCollector), record).project == PROJECT


def test_poll_and_push_of_one_state_have_one_fingerprint(plugin):
    """The API stack and the notification of the same state fingerprint alike."""
    (change,) = notify(plugin, "orchestration.stack.update.end", PAYLOAD)
    collector = make(StackCollector)
    polled = shapes.from_api(collector, API_STACK)
    assert change.entity.state == polled.state == "UPDATE_COMPLETE"
    assert fingerprint.of(polled, collector.volatile_properties) == fingerprint.of(
        change.entity, plugin.volatile_properties
    )


@pytest.mark.parametrize(
    ("event_type", "state", "action"),
    [
        ("orchestration.stack.create.start", "CREATE_IN_PROGRESS", Action.CREATE),
        ("orchestration.stack.create.end", "CREATE_COMPLETE", Action.CREATE),
        ("orchestration.stack.create.error", "CREATE_FAILED", Action.CREATE),
        ("orchestration.stack.update.end", "UPDATE_COMPLETE", Action.UPDATE),
        ("orchestration.stack.suspend.end", "SUSPEND_COMPLETE", Action.UPDATE),
        ("orchestration.stack.resume.end", "RESUME_COMPLETE", Action.UPDATE),
        ("orchestration.stack.check.error", "CHECK_FAILED", Action.UPDATE),
        ("orchestration.stack.delete.start", "DELETE_IN_PROGRESS", Action.UPDATE),
        ("orchestration.stack.delete.error", "DELETE_FAILED", Action.UPDATE),
        ("orchestration.stack.delete.end", "DELETE_COMPLETE", Action.DELETE),
    ],
)
def test_event_types_map_to_actions(plugin, event_type, state, action):
    """Each stack event gives the documented action with the payload's state."""
    (change,) = notify(plugin, event_type, {**PAYLOAD, "state": state})
    assert (change.action, change.key, change.entity.state) == (action, STACK_ID, state)


@pytest.mark.parametrize(
    ("event_type", "publisher", "accepted"),
    [
        ("orchestration.stack.create.end", "orchestration.h1", True),
        ("orchestration.stack.rollback.error", "orchestration.h1", True),
        ("orchestration.autoscaling.start", "orchestration.h1", False),
        ("orchestration.autoscaling.end", "orchestration.h1", False),
        ("orchestration.stack.create.end", "compute.h1", False),
        ("orchestration.stack.create", "orchestration.h1", False),
    ],
)
def test_filters_take_only_stack_events(plugin, event_type, publisher, accepted):
    """Only orchestration.stack.<action>.<phase> events from Heat are taken."""
    assert plugin.accepts(event_type, publisher) is accepted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["x"], "payload must be an object"),
        ({k: v for k, v in PAYLOAD.items() if k != "stack_identity"}, "stack_identity"),
        ({**PAYLOAD, "stack_identity": f"arn:openstack:heat::{PROJECT}:{STACK_ID}"}, "neither"),
        ({**PAYLOAD, "state": 3}, "state must be a string"),
        ({**PAYLOAD, "tags": [1]}, "tags"),
        ({**PAYLOAD, "create_at": "soon"}, "bad timestamp"),
    ],
)
def test_malformed_payloads_are_invalid(plugin, body, message):
    """A malformed payload raises InvalidNotification naming the problem."""
    with pytest.raises(InvalidNotification, match=message):
        notify(plugin, "orchestration.stack.update.end", body)


@pytest.mark.parametrize(("tags", "expected"), [(None, []), ("b,a", ["a", "b"]), ([], [])])
def test_tags_are_a_sorted_list(plugin, tags, expected):
    """Missing, comma-joined or listed tags all become a sorted list."""
    (change,) = notify(plugin, "orchestration.stack.update.end", {**PAYLOAD, "tags": tags})
    assert change.entity.properties["tags"] == expected


def test_project_falls_back_to_the_arn(plugin):
    """Without tenant_id the project comes from the stack ARN."""
    body = {k: v for k, v in PAYLOAD.items() if k != "tenant_id"}
    (change,) = notify(plugin, "orchestration.stack.update.end", body)
    assert change.entity.project == PROJECT


def test_heat_27s_bare_stack_id_is_the_key(plugin):
    """Heat 27 sends the bare stack id as stack_identity (not an ARN); the project is tenant_id."""
    (change,) = notify(
        plugin, "orchestration.stack.create.end", {**PAYLOAD, "stack_identity": STACK_ID}
    )
    assert (change.entity.key, change.entity.project) == (STACK_ID, PROJECT)


@pytest.mark.parametrize("api_value", ["", None])
def test_a_template_without_description_fingerprints_alike(plugin, api_value):
    """The API lists "" where the notification says Heat's default "No description"."""
    collector = make(StackCollector)
    polled = shapes.from_api(collector, {**API_STACK, "description": api_value})
    (change,) = notify(
        plugin,
        "orchestration.stack.update.end",
        {**PAYLOAD, "stack_identity": STACK_ID, "description": "No description"},
    )
    pushed = change.entity
    assert polled.properties["description"] == pushed.properties["description"] == ""
    assert fingerprint.of(polled, collector.volatile_properties) == fingerprint.of(
        pushed, collector.volatile_properties
    )
