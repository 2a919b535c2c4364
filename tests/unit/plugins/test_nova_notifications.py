"""Nova notifications (versioned and legacy) → instance and host changes."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action
from synchronizer.plugin_base import Notification
from synchronizer_plugins import openstack
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.instances import InstanceCollector, server_instance
from synchronizer_plugins.nova.notifications import NovaNotifications, ignore_reason

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"
PROJECT = "6f70656e737461636b20342065766572"
TIME = "2024-05-06T07:08:09.000000Z"
IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"


def make(cls: type, **overrides: Any) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group=cls.name)
    return cls(conf)


def wrap(name: str, data: dict[str, Any], version: str = "1.0") -> dict[str, Any]:
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    }


def instance_data(**changes: Any) -> dict[str, Any]:
    data = {
        "uuid": UUID,
        "tenant_id": PROJECT,
        "user_id": "fake",
        "display_name": "some-server",
        "host": "compute",
        "node": "fake-mini",
        "availability_zone": "nova",
        "state": "active",
        "task_state": None,
        "power_state": "running",
        "locked": False,
        "image_uuid": "155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "key_name": "my-key",
        "created_at": "2012-10-29T13:42:11Z",
        "launched_at": "2012-10-29T13:42:11Z",
        "updated_at": "2012-10-29T13:42:11Z",
        "metadata": {"k": "v"},
        "flavor": wrap("FlavorPayload", {"name": "m1.small", "flavorid": "2"}, "1.4"),
        "block_devices": [wrap("BlockDevicePayload", {"volume_id": "vol-1"})],
        "ip_addresses": [wrap("IpPayload", {"port_uuid": "p1", "address": "10.0.0.3"})],
    }
    data.update(changes)
    return data


def versioned(
    event_type: str, name: str = "InstanceActionPayload", version: str = "1.9", **changes: Any
) -> Notification:
    return Notification(
        event_type,
        wrap(name, instance_data(**changes), version),
        "nova-compute:compute",
        timestamp=TIME,
    )


def legacy_payload(**changes: Any) -> dict[str, Any]:
    payload = {
        "instance_id": UUID,
        "tenant_id": PROJECT,
        "user_id": "fake",
        "display_name": "some-server",
        "host": "compute",
        "node": "fake-mini",
        "availability_zone": "nova",
        "state": "active",
        "state_description": "",
        "instance_type": "m1.small",
        "instance_flavor_id": "2",
        "image_meta": {"base_image_ref": "155d900f-4e14-4e4c-a73d-069cbf4541e6"},
        "image_ref_url": "http://glance/images/155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "created_at": "2012-10-29 13:42:11+00:00",
        "launched_at": "2012-10-29T13:42:11.000000",
        "metadata": {"k": "v"},
        "deleted_at": "",
        "terminated_at": "",
    }
    payload.update(changes)
    return payload


def server_record(**changes: Any) -> dict[str, Any]:
    record = {
        "id": UUID,
        "tenant_id": PROJECT,
        "user_id": "fake",
        "name": "some-server",
        "status": "ACTIVE",
        "created": "2012-10-29T13:42:11Z",
        "updated": "2013-01-01T00:00:00Z",
        "flavor": {"original_name": "m1.small", "vcpus": 1, "ram": 2048, "disk": 20},
        "image": {"id": "155d900f-4e14-4e4c-a73d-069cbf4541e6", "links": []},
        "metadata": {"k": "v"},
        "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-SRV-ATTR:host": "compute",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": "fake-mini",
        "OS-EXT-STS:vm_state": "active",
        "OS-EXT-STS:task_state": None,
        "OS-EXT-STS:power_state": 1,
        "locked": False,
        "key_name": "my-key",
        "os-extended-volumes:volumes_attached": [{"id": "vol-1"}],
    }
    record.update(changes)
    return record


def one(plugin: NovaNotifications, notification: Notification):
    changes = list(plugin.convert(notification))
    assert len(changes) == 1
    return changes[0]


# -- poll and push agree ------------------------------------------------------

STATES = [
    ("active", None, "compute"),
    ("active", "pausing", "compute"),
    ("paused", None, "compute"),
    ("stopped", "powering-on", "compute"),
    ("resized", "resize_reverting", "host2"),
    ("building", "scheduling", None),
    ("shelved_offloaded", None, None),
    ("error", None, None),
]


@pytest.mark.parametrize(("vm_state", "task_state", "host"), STATES)
def test_versioned_push_fingerprints_like_the_poll(vm_state, task_state, host):
    """A versioned payload and a servers-detail record of one state fingerprint alike."""
    poll = server_instance(
        server_record(
            **{
                "OS-EXT-STS:vm_state": vm_state,
                "OS-EXT-STS:task_state": task_state,
                "OS-EXT-SRV-ATTR:host": host,
            }
        ),
        "m1.small",
    ).entity(make(InstanceCollector), volume_relations=True)
    push = one(
        make(NovaNotifications),
        versioned(
            "instance.update",
            "InstanceUpdatePayload",
            "2.1",
            state=vm_state,
            task_state=task_state,
            host=host,
            power_state="paused",
            locked=True,
            updated_at="2030-01-01T00:00:00Z",
        ),
    ).entity
    assert fingerprint.of(poll) == fingerprint.of(push)
    assert push.source is not None
    assert push.source.kind == "push"


@pytest.mark.parametrize(("vm_state", "task_state", "host"), STATES)
def test_legacy_push_fingerprints_like_the_poll(vm_state, task_state, host):
    """A legacy payload and a record of one state fingerprint alike (volume relations off)."""
    poll = server_instance(
        server_record(
            **{
                "OS-EXT-STS:vm_state": vm_state,
                "OS-EXT-STS:task_state": task_state,
                "OS-EXT-SRV-ATTR:host": host,
            }
        ),
        "m1.small",
    ).entity(make(InstanceCollector, volume_relations=False), volume_relations=False)
    plugin = make(NovaNotifications, format="legacy", volume_relations=False)
    push = one(
        plugin,
        Notification(
            "compute.instance.update",
            legacy_payload(state=vm_state, state_description=task_state or "", host=host),
            timestamp=TIME,
        ),
    ).entity
    assert fingerprint.of(poll) == fingerprint.of(push)


@pytest.mark.parametrize(
    ("changes", "image"),
    [
        ({"image_meta": {"base_image_ref": "original"}}, IMAGE),
        ({"image_ref_url": IMAGE}, IMAGE),
        ({"image_ref_url": "http://glance/images/"}, None),
        ({"image_ref_url": ""}, None),
        ({"image_ref_url": None, "image_meta": {"base_image_ref": "x"}}, None),
    ],
    ids=["url-wins", "bare-id", "boot-from-volume", "empty", "null"],
)
def test_legacy_image_is_the_image_ref(changes, image):
    """The legacy image id comes from image_ref_url, as the API's image.id does."""
    plugin = make(NovaNotifications, format="legacy")
    payload = legacy_payload(**changes)
    change = one(plugin, Notification("compute.instance.exists", payload))
    assert change.entity.properties["image"] == image


def test_legacy_image_falls_back_to_base_image_ref():
    """Without image_ref_url, image_meta.base_image_ref names the image."""
    payload = legacy_payload()
    del payload["image_ref_url"]
    plugin = make(NovaNotifications, format="legacy")
    change = one(plugin, Notification("compute.instance.exists", payload))
    assert change.entity.properties["image"] == IMAGE


# -- actions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "changes", "action", "state"),
    [
        ("instance.create.start", {"state": "building", "host": None}, Action.CREATE, "BUILD"),
        ("instance.create.end", {}, Action.CREATE, "ACTIVE"),
        ("instance.pause.start", {"task_state": "pausing"}, Action.UPDATE, "ACTIVE"),
        ("instance.pause.end", {"state": "paused"}, Action.UPDATE, "PAUSED"),
        ("instance.power_off.end", {"state": "stopped"}, Action.UPDATE, "SHUTOFF"),
        ("instance.soft_delete.end", {"state": "soft-delete"}, Action.UPDATE, "SOFT_DELETED"),
        ("instance.delete.start", {"task_state": "deleting"}, Action.UPDATE, "ACTIVE"),
        ("instance.delete.end", {"state": "deleted"}, Action.DELETE, "DELETED"),
        ("instance.update", {"state": "deleted"}, Action.DELETE, "DELETED"),
        ("instance.resize.error", {"task_state": "resize_prep"}, Action.UPDATE, "RESIZE"),
        ("instance.live_migration_post_dest.end", {"host": "host2"}, Action.UPDATE, "ACTIVE"),
    ],
)
def test_instance_event_actions(event_type, changes, action, state):
    """Create events create, deleted states and delete.end delete, the rest update."""
    change = one(make(NovaNotifications), versioned(event_type, **changes))
    assert (change.action, change.entity.state, change.entity.key) == (action, state, UUID)
    assert change.entity.timestamp == TIME


@pytest.mark.parametrize(
    ("event_type", "state", "action"),
    [
        ("compute.instance.create.end", "active", Action.CREATE),
        ("compute.instance.update", "paused", Action.UPDATE),
        ("compute.instance.delete.end", "deleted", Action.DELETE),
        ("compute.instance.delete.start", "active", Action.UPDATE),
    ],
)
def test_legacy_event_actions(event_type, state, action):
    """Legacy compute.instance.* events follow the same action rules."""
    plugin = make(NovaNotifications, format="legacy")
    assert one(plugin, Notification(event_type, legacy_payload(state=state))).action == action


@pytest.mark.parametrize(
    ("binary", "expected"), [("nova-compute", [(Action.DELETE, "host1")]), ("nova-conductor", [])]
)
def test_service_delete_deletes_compute_hosts_only(binary, expected):
    """service.delete of a nova-compute service deletes its host; other services are ignored."""
    data = {
        "host": "host1",
        "binary": binary,
        "disabled": False,
        "forced_down": False,
        "availability_zone": None,
        "last_seen_up": None,
    }
    changes = make(NovaNotifications).convert(
        Notification("service.delete", wrap("ServiceStatusPayload", data, "1.1"))
    )
    assert [(c.action, c.entity.key) for c in changes] == expected
    assert all(c.entity.type == "nova.host" for c in changes)


# -- ignored and invalid -------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "fmt"),
    [
        ("aggregate.add_host.end", "versioned"),
        ("keypair.create.end", "versioned"),
        ("flavor.update", "versioned"),
        ("server_group.add_member", "versioned"),
        ("scheduler.select_destinations.end", "versioned"),
        ("metrics.update", "versioned"),
        ("volume.usage", "versioned"),
        ("compute.exception", "versioned"),
        ("compute_task.build_instances.error", "versioned"),
        ("libvirt.connect.error", "versioned"),
        ("service.update", "versioned"),
        ("service.create", "versioned"),
        ("compute.instance.update", "versioned"),
        ("instance.update", "legacy"),
        ("service.delete", "legacy"),
        ("compute.metrics.update", "legacy"),
    ],
)
def test_events_without_instance_or_host_state_are_ignored_by_rule(event_type, fmt):
    """Every ignored event family has a documented reason and converts to nothing."""
    assert ignore_reason(event_type, fmt)
    plugin = make(NovaNotifications, format=fmt)
    assert list(plugin.convert(Notification(event_type, wrap("XPayload", {})))) == []


def test_instance_event_with_a_non_instance_payload_is_ignored():
    """An instance.* event whose payload is not an Instance*Payload states no instance."""
    notification = Notification("instance.whatever", wrap("SomethingPayload", {"x": 1}))
    plugin = make(NovaNotifications)
    assert list(plugin.convert(notification)) == []
    assert plugin.why_ignored(notification)


@pytest.mark.parametrize(
    ("name", "version", "ok"),
    [
        ("InstanceActionPayload", "1.9", True),
        ("InstanceActionPayload", "2.0", False),
        ("InstanceUpdatePayload", "2.1", True),
        ("InstanceUpdatePayload", "1.8", True),
        ("InstanceUpdatePayload", "3.0", False),
        ("InstanceExistsPayload", "2.1", True),
        ("InstanceActionPayload", "x.1", False),
    ],
)
def test_payload_major_versions(name, version, ok):
    """A payload major version this plugin does not know is invalid."""
    notification = versioned("instance.update", name, version)
    if ok:
        assert one(make(NovaNotifications), notification).entity.key == UUID
    else:
        with pytest.raises(InvalidNotification, match="version"):
            list(make(NovaNotifications).convert(notification))


def test_nested_flavor_of_an_unknown_major_is_invalid():
    """Nested objects the plugin reads are version-checked too."""
    notification = versioned("instance.update", flavor=wrap("FlavorPayload", {"name": "m1"}, "2.0"))
    with pytest.raises(InvalidNotification, match="FlavorPayload"):
        list(make(NovaNotifications).convert(notification))


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "text",
        {"uuid": UUID},
        wrap("InstanceActionPayload", instance_data(uuid=None), "1.9"),
        wrap("InstanceActionPayload", instance_data(state=3), "1.9"),
        wrap("InstanceActionPayload", instance_data(tenant_id=None), "1.9"),
        wrap("InstanceActionPayload", instance_data(metadata=["k"]), "1.9"),
        wrap("InstanceActionPayload", instance_data(block_devices={}), "1.9"),
        wrap("InstanceActionPayload", instance_data(created_at="soon"), "1.9"),
        {"nova_object.data": {}, "nova_object.name": "InstanceActionPayload"},
    ],
    ids=[
        "null",
        "string",
        "unwrapped",
        "no-uuid",
        "int-state",
        "no-project",
        "list-metadata",
        "dict-bdms",
        "bad-time",
        "no-version",
    ],
)
def test_malformed_versioned_payloads_are_invalid(payload):
    """Payloads that are not instance objects with typed fields raise InvalidNotification."""
    with pytest.raises(InvalidNotification):
        list(make(NovaNotifications).convert(Notification("instance.update", payload)))


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"tenant_id": PROJECT, "state": "active"},
        legacy_payload(state=None),
        legacy_payload(display_name=["web"]),
    ],
    ids=["list", "no-instance-id", "no-state", "list-name"],
)
def test_malformed_legacy_payloads_are_invalid(payload):
    """Legacy payloads missing their id or state, or mistyped, raise InvalidNotification."""
    plugin = make(NovaNotifications, format="legacy")
    with pytest.raises(InvalidNotification):
        list(plugin.convert(Notification("compute.instance.update", payload)))


def test_a_numeric_display_name_is_normalised_as_the_poll_does():
    """A name sent as a number gives the same text (and fingerprint) as the API's listing."""
    plugin = make(NovaNotifications, format="legacy")
    (change,) = plugin.convert(
        Notification("compute.instance.update", legacy_payload(display_name=12345))
    )
    assert change.entity.properties["name"] == "12345"


# -- format, topics, filters, warnings --------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "topics", "accepted", "refused"),
    [
        (
            "versioned",
            ["versioned_notifications"],
            ["instance.pause.end", "service.delete"],
            ["compute.instance.update", "service.update", "aggregate.create.end"],
        ),
        (
            "legacy",
            ["notifications"],
            ["compute.instance.update"],
            ["instance.pause.end", "service.delete", "compute.metrics.update"],
        ),
    ],
)
def test_format_sets_topics_and_event_filter(fmt, topics, accepted, refused):
    """The topic default and the accepted event types follow the format."""
    plugin = make(NovaNotifications, format=fmt)
    assert (plugin.exchange, plugin.topics) == ("nova", topics)
    assert all(plugin.accepts(e, "nova-compute:h") for e in accepted)
    assert not any(plugin.accepts(e, "nova-compute:h") for e in refused)


def test_explicit_topics_win_over_the_format_default():
    """Configured topics replace the format's default topic."""
    assert make(NovaNotifications, topics=["a", "b"]).topics == ["a", "b"]


def test_missing_block_devices_warn_once(caplog):
    """A payload without block devices warns once that volume relations are missing."""
    plugin = make(NovaNotifications)
    with caplog.at_level(logging.WARNING, logger="synchronizer_plugins.nova.notifications"):
        for _ in range(3):
            change = one(plugin, versioned("instance.update", block_devices=None))
    assert change.entity.relations == ()
    assert sum("bdms_in_notifications" in r.getMessage() for r in caplog.records) == 1


def test_volume_relations_off_drops_the_relations():
    """With volume_relations off, payload volumes give no relations."""
    plugin = make(NovaNotifications, volume_relations=False)
    assert one(plugin, versioned("instance.update")).entity.relations == ()


def test_conversion_does_not_mutate_the_payload():
    """convert leaves the notification's payload as it was."""
    notification = versioned("instance.update")
    before = copy.deepcopy(notification.payload)
    one(make(NovaNotifications), notification)
    assert notification.payload == before


def test_entity_types_and_volatile_match_the_collectors():
    """The plugin declares both types it produces and the shapes' volatile set."""
    assert NovaNotifications.entity_types == (shapes.INSTANCE, shapes.HOST)
    assert NovaNotifications.volatile_properties is InstanceCollector.volatile_properties
