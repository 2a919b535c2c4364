"""The Cinder volume shape, collector conversion and notification plugin."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Relation
from synchronizer.plugin_base import Notification
from synchronizer_plugins import openstack
from synchronizer_plugins.cinder import shapes
from synchronizer_plugins.cinder.notifications import CinderNotifications
from synchronizer_plugins.cinder.volumes import VolumeCollector

VOLUME_ID = "6edbc2f4-1507-44f8-ac0d-eed1d2608d38"
SERVER_ID = "b2f7e1a4-37ad-4b8c-9a55-1f1d0f2b8c11"
PROJECT = "0c4e939acacf4376bdcd1129f1a054ad"

# A Block Storage API 3.63 volume, attached to one server.
API_VOLUME: dict[str, Any] = {
    "id": VOLUME_ID,
    "name": "db-data",
    "status": "in-use",
    "size": 20,
    "availability_zone": "az1",
    "os-vol-host-attr:host": "storage1@lvm#pool",
    "os-vol-tenant-attr:tenant_id": PROJECT,
    "volume_type": "fast",
    "volume_type_id": "9c2cf1c6-3c0e-4a5d-a0d2-3f0e50f5a1b2",
    "snapshot_id": None,
    "user_id": "a1b2c3",
    "created_at": "2024-05-01T10:00:00.123456",
    "updated_at": "2024-05-02T11:00:00.000000",
    "bootable": "false",
    "metadata": {"role": "db"},
    "attachments": [
        {
            "id": VOLUME_ID,
            "attachment_id": "att-1",
            "volume_id": VOLUME_ID,
            "server_id": SERVER_ID,
            "host_name": None,
            "device": "/dev/vdb",
            "attached_at": "2024-05-01T10:05:00.000000",
        }
    ],
    "links": [{"rel": "self", "href": "http://cinder/v3/volumes/x"}],
}

# The same state as Cinder's usage notification payload describes it.
PAYLOAD: dict[str, Any] = {
    "volume_id": VOLUME_ID,
    "display_name": "db-data",
    "status": "in-use",
    "size": 20,
    "availability_zone": "az1",
    "host": "storage1@lvm#pool",
    "tenant_id": PROJECT,
    "volume_type": "9c2cf1c6-3c0e-4a5d-a0d2-3f0e50f5a1b2",
    "snapshot_id": None,
    "user_id": "a1b2c3",
    "created_at": "2024-05-01T10:00:00+00:00",
    "launched_at": "2024-05-01T10:00:02+00:00",
    "replication_status": "disabled",
    "metadata": [],
    "volume_attachment": [
        {
            "id": "att-1",
            "instance_uuid": SERVER_ID,
            "attach_status": "attached",
            "mountpoint": "/dev/vdb",
        }
    ],
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
def collector() -> VolumeCollector:
    return make(VolumeCollector)


@pytest.fixture
def notifications() -> CinderNotifications:
    return make(CinderNotifications)


def notify(plugin: CinderNotifications, event_type: str, payload: Any) -> list:
    note = Notification(
        event_type, payload, "volume.storage1@lvm", timestamp="2024-05-03 10:00:00.5"
    )
    return plugin.convert(note)


def test_api_record_maps_to_the_normalised_shape(collector):
    """An API volume becomes a cinder.volume with its status, project and attachments."""
    entity = shapes.from_api(collector, API_VOLUME)
    assert (entity.type, entity.key, entity.state) == ("cinder.volume", VOLUME_ID, "in-use")
    assert entity.project == PROJECT
    assert entity.parent is None
    assert entity.relations == (Relation("attached", "nova.instance", SERVER_ID),)
    assert entity.properties == {
        "name": "db-data",
        "size": 20,
        "availability_zone": "az1",
        "host": "storage1@lvm#pool",
        "volume_type_id": "9c2cf1c6-3c0e-4a5d-a0d2-3f0e50f5a1b2",
        "snapshot_id": None,
        "user_id": "a1b2c3",
        "created_at": "2024-05-01T10:00:00.000000Z",
    }


def test_poll_and_push_of_one_state_have_one_fingerprint(collector, notifications):
    """The API record and the notification of the same state fingerprint alike."""
    polled = shapes.from_api(collector, API_VOLUME)
    (change,) = notify(notifications, "volume.attach.end", PAYLOAD)
    assert change.entity.source.kind == "push"
    assert polled.source.kind == "poll"
    assert fingerprint.of(polled, collector.volatile_properties) == fingerprint.of(
        change.entity, notifications.volatile_properties
    )
    assert collector.volatile_properties == notifications.volatile_properties


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "available"),
        ("size", 40),
        ("display_name", "renamed"),
        ("volume_attachment", []),
    ],
)
def test_a_real_change_changes_the_fingerprint(collector, notifications, field, value):
    """A notification differing from the poll in a shape field fingerprints differently."""
    payload = {**PAYLOAD, field: value}
    (change,) = notify(notifications, "volume.update.end", payload)
    polled = shapes.from_api(collector, API_VOLUME)
    assert fingerprint.of(change.entity) != fingerprint.of(polled)


@pytest.mark.parametrize(
    ("event_type", "action"),
    [
        ("volume.create.start", Action.CREATE),
        ("volume.create.end", Action.CREATE),
        ("volume.update.end", Action.UPDATE),
        ("volume.attach.end", Action.UPDATE),
        ("volume.detach.end", Action.UPDATE),
        ("volume.resize.end", Action.UPDATE),
        ("volume.retype", Action.UPDATE),
        ("volume.exists", Action.UPDATE),
        ("volume.delete.start", Action.UPDATE),
        ("volume.delete.end", Action.DELETE),
    ],
)
def test_event_types_map_to_actions(notifications, event_type, action):
    """Each volume event type gives the documented action on the volume."""
    (change,) = notify(notifications, event_type, PAYLOAD)
    assert change.action is action
    assert change.key == VOLUME_ID
    assert change.entity.timestamp == "2024-05-03T10:00:00.500000Z"


@pytest.mark.parametrize(
    ("event_type", "publisher", "accepted"),
    [
        ("volume.create.end", "volume.host1@lvm", True),
        ("volume.retype", "volume.host1", True),
        ("snapshot.create.end", "snapshot.host1", False),
        ("capacity.pool", "capacity.host1", False),
        ("volume_type.create", "volume.host1", False),
        ("volume.create.end", "compute.host1", False),
    ],
)
def test_filters_take_only_volume_events(notifications, event_type, publisher, accepted):
    """Only volume.* events from a volume publisher are taken."""
    assert notifications.accepts(event_type, publisher) is accepted


@pytest.mark.parametrize(
    "attachments",
    [
        [{"instance_uuid": SERVER_ID, "attach_status": "detached"}],
        [{"instance_uuid": SERVER_ID, "attach_status": "attaching"}],
        [{"instance_uuid": None, "attach_status": "attached"}],
        [],
        None,
    ],
)
def test_only_live_attachments_are_relations(notifications, attachments):
    """Attachments that are not attached give no relation, as the API hides them."""
    (change,) = notify(
        notifications, "volume.detach.end", {**PAYLOAD, "volume_attachment": attachments}
    )
    assert change.entity.relations == ()


def test_duplicate_attachments_give_one_sorted_relation_each(notifications):
    """Several attachments to a server give one relation per server, sorted."""
    attachments = [
        {"server_id": "s2"},
        {"instance_uuid": "s1", "attach_status": "attached"},
        {"server_id": "s2"},
    ]
    (change,) = notify(
        notifications, "volume.attach.end", {**PAYLOAD, "volume_attachment": attachments}
    )
    assert [r.key for r in change.entity.relations] == ["s1", "s2"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not an object", "payload must be an object"),
        ({k: v for k, v in PAYLOAD.items() if k != "volume_id"}, "volume_id"),
        ({**PAYLOAD, "volume_id": 7}, "volume_id"),
        ({**PAYLOAD, "size": "big"}, "size"),
        ({**PAYLOAD, "size": True}, "size"),
        ({**PAYLOAD, "volume_attachment": "s1"}, "volume_attachment must be a list"),
        ({**PAYLOAD, "volume_attachment": ["s1"]}, "volume_attachment items"),
        ({**PAYLOAD, "created_at": 12}, "timestamp"),
        ({**PAYLOAD, "created_at": "yesterday"}, "bad timestamp"),
    ],
)
def test_malformed_payloads_are_invalid(notifications, payload, message):
    """A malformed payload raises InvalidNotification naming the problem."""
    with pytest.raises(InvalidNotification, match=message):
        notify(notifications, "volume.update.end", payload)


def test_string_sizes_and_empty_strings_are_normalised(notifications):
    """A size sent as a string is an int and empty strings are None."""
    payload = {**PAYLOAD, "size": "40", "host": "", "snapshot_id": ""}
    (change,) = notify(notifications, "volume.resize.end", payload)
    props = change.entity.properties
    assert (props["size"], props["host"], props["snapshot_id"]) == (40, None, None)


def test_collector_skips_a_malformed_record(collector):
    """A malformed record with an id is reported skipped (it keeps its state); keyless, not."""
    record = copy.deepcopy(API_VOLUME)
    del record["id"]
    assert collector._convert(record) is None
    assert collector.skipped == {}
    assert collector._convert({**API_VOLUME, "created_at": "never"}) is None
    assert list(collector.skipped) == [("cinder.volume", VOLUME_ID)]
    assert collector._convert(API_VOLUME).key == VOLUME_ID


def test_plugins_declare_where_they_listen(notifications, collector):
    """The notification plugin listens on cinder/notifications; the collector uses the catalog."""
    assert (notifications.exchange, notifications.topics) == ("cinder", ["notifications"])
    assert collector.service_type == "block-storage"
    assert collector.options.page_size == 1000


def test_a_non_admin_view_of_a_volume_makes_the_listing_fail_permanently(collector):
    """Without os-vol-tenant-attr:tenant_id Cinder ignored all_tenants: never a complete listing."""
    from synchronizer.errors import PermanentError

    record = {k: v for k, v in API_VOLUME.items() if k != "os-vol-tenant-attr:tenant_id"}
    with pytest.raises(PermanentError, match="all_tenants"):
        collector.build(record)
    assert collector.build(API_VOLUME).project == PROJECT
