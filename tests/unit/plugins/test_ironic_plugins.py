"""The Ironic node shape and the versioned notification plugin."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Relation
from synchronizer.plugin_base import Notification
from synchronizer_plugins import openstack
from synchronizer_plugins.ironic import shapes
from synchronizer_plugins.ironic.nodes import NodeCollector
from synchronizer_plugins.ironic.notifications import IronicNotifications

NODE_ID = "1be26c0b-03f2-4d2e-ae87-c02d7f33c123"
INSTANCE_ID = "d6ea00c1-1f94-4e95-90b3-3462d7031678"

# The fields an API 1.65 node and a NodePayload both have.
COMMON: dict[str, Any] = {
    "uuid": NODE_ID,
    "name": "rack1-node7",
    "description": None,
    "driver": "ipmi",
    "provision_state": "active",
    "target_provision_state": None,
    "power_state": "power on",
    "target_power_state": None,
    "maintenance": False,
    "maintenance_reason": None,
    "fault": None,
    "console_enabled": False,
    "protected": False,
    "protected_reason": None,
    "retired": False,
    "retired_reason": None,
    "last_error": None,
    "resource_class": "baremetal.large",
    "conductor_group": "",
    "owner": "f1e2d3",
    "lessee": None,
    "instance_uuid": INSTANCE_ID,
    "traits": ["HW_CPU_X86_VMX", "CUSTOM_RAID"],
    "properties": {"cpus": 8, "memory_mb": 4096},
    "created_at": "2024-01-26T20:41:03+00:00",
    "updated_at": "2024-01-27T20:41:03+00:00",
    "provision_updated_at": "2024-01-27T20:41:03+00:00",
}

API_NODE: dict[str, Any] = {
    **COMMON,
    "created_at": "2024-01-26T20:41:03.512345+00:00",
    "conductor": "conductor-1",
    "chassis_uuid": None,
    "allocation_uuid": None,
    "driver_info": {"ipmi_password": "******"},
    "instance_info": {"image_source": "x"},
    "links": [{"rel": "self", "href": "http://ironic/v1/nodes/x"}],
}


def payload(name: str = "NodePayload", version: str = "1.15", **data: Any) -> dict[str, Any]:
    return {
        "ironic_object.namespace": "ironic",
        "ironic_object.name": name,
        "ironic_object.version": version,
        "ironic_object.data": {**COMMON, **data},
    }


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


@pytest.fixture
def plugin() -> IronicNotifications:
    return make(IronicNotifications)


def notify(plugin: IronicNotifications, event_type: str, body: Any) -> list:
    note = Notification(event_type, body, "ironic-conductor.c1", timestamp="2024-02-01T00:00:00Z")
    return plugin.convert(note)


def test_node_maps_to_the_normalised_shape():
    """An API node becomes an ironic.node in its provision state, hosting its instance."""
    entity = shapes.node(make(NodeCollector), API_NODE)
    assert (entity.type, entity.key, entity.state, entity.project) == (
        "ironic.node",
        NODE_ID,
        "active",
        "f1e2d3",
    )
    assert entity.relations == (Relation("hosts", "nova.instance", INSTANCE_ID),)
    assert entity.properties["power_state"] == "power on"
    assert entity.properties["traits"] == ["CUSTOM_RAID", "HW_CPU_X86_VMX"]
    assert entity.properties["created_at"] == "2024-01-26T20:41:03.000000Z"
    assert not {"driver_info", "instance_info", "conductor"} & entity.properties.keys()


@pytest.mark.parametrize(
    "name",
    [
        "NodePayload",
        "NodeCRUDPayload",
        "NodeSetPowerStatePayload",
        "NodeCorrectedPowerStatePayload",
        "NodeSetProvisionStatePayload",
    ],
)
def test_poll_and_push_of_one_state_have_one_fingerprint(plugin, name):
    """Every node payload class fingerprints like the API node in the same state."""
    extra = {"to_power": "power off", "event": "deploy", "chassis_uuid": None}
    (change,) = notify(plugin, "baremetal.node.update.end", payload(name, **extra))
    collector = make(NodeCollector)
    polled = shapes.node(collector, API_NODE)
    assert fingerprint.of(polled, collector.volatile_properties) == fingerprint.of(
        change.entity, plugin.volatile_properties
    )


@pytest.mark.parametrize(
    ("owner", "lessee", "project"),
    [("o", "l", "o"), (None, "l", "l"), ("", "l", "l"), (None, None, None)],
)
def test_project_is_owner_else_lessee(owner, lessee, project):
    """The project is the owner, else the lessee, else none."""
    entity = shapes.node(make(NodeCollector), {**API_NODE, "owner": owner, "lessee": lessee})
    assert entity.project == project


@pytest.mark.parametrize(
    ("event_type", "action"),
    [
        ("baremetal.node.create.end", Action.CREATE),
        ("baremetal.node.update.end", Action.UPDATE),
        ("baremetal.node.power_set.start", Action.UPDATE),
        ("baremetal.node.power_set.end", Action.UPDATE),
        ("baremetal.node.provision_set.error", Action.UPDATE),
        ("baremetal.node.maintenance_set.end", Action.UPDATE),
        ("baremetal.node.console_set.end", Action.UPDATE),
        ("baremetal.node.power_state_corrected.success", Action.UPDATE),
        ("baremetal.node.delete.end", Action.DELETE),
    ],
)
def test_event_types_map_to_actions(plugin, event_type, action):
    """Each node event gives the documented action on the node."""
    (change,) = notify(plugin, event_type, payload())
    assert (change.action, change.key) == (action, NODE_ID)


@pytest.mark.parametrize(
    "event_type", ["baremetal.node.create.start", "baremetal.node.create.error"]
)
def test_nodes_not_stored_yet_give_no_change(plugin, event_type):
    """create.start and create.error describe no stored node and give no change."""
    assert notify(plugin, event_type, payload()) == []


@pytest.mark.parametrize(
    ("event_type", "publisher", "accepted"),
    [
        ("baremetal.node.power_set.end", "ironic-conductor.c1", True),
        ("baremetal.node.update.end", "ironic-api.a1", True),
        ("baremetal.port.update.end", "ironic-api.a1", False),
        ("baremetal.portgroup.update.end", "ironic-api.a1", False),
        ("baremetal.chassis.update.end", "ironic-api.a1", False),
        ("baremetal.deploy_template.update.end", "ironic-api.a1", False),
        ("baremetal.volumetarget.update.end", "ironic-api.a1", False),
        ("baremetal.node.update.end", "nova-compute.c1", False),
    ],
)
def test_filters_take_only_node_events(plugin, event_type, publisher, accepted):
    """Only baremetal.node.* events from Ironic services are taken."""
    assert plugin.accepts(event_type, publisher) is accepted


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("text", "payload must be an object"),
        ({**payload(), "ironic_object.namespace": "nova"}, "namespace"),
        (payload(name="PortCRUDPayload"), "not a node payload"),
        (payload(version="2.0"), "unsupported NodePayload major version 2.0"),
        (payload(version="one"), "malformed payload version"),
        ({**payload(), "ironic_object.data": []}, "data must be an object"),
        (payload(uuid=None), "uuid"),
        (payload(traits="CUSTOM_X"), "traits"),
        (payload(properties=[1]), "properties"),
        (payload(created_at="not a time"), "bad timestamp"),
    ],
)
def test_malformed_payloads_are_invalid(plugin, body, message):
    """A malformed or unknown-major payload raises InvalidNotification naming the problem."""
    with pytest.raises(InvalidNotification, match=message):
        notify(plugin, "baremetal.node.update.end", body)


def test_newer_minor_versions_are_accepted(plugin):
    """A newer 1.x payload with fields this plugin does not know still maps."""
    (change,) = notify(plugin, "baremetal.node.update.end", payload(version="1.99", shard="s1"))
    assert change.key == NODE_ID
    assert "shard" not in change.entity.properties


def test_null_flags_read_as_false(plugin):
    """A payload's null boolean reads as the False the API shows."""
    (change,) = notify(plugin, "baremetal.node.update.end", payload(retired=None))
    assert change.entity.properties["retired"] is False


def test_collector_skips_a_malformed_record():
    """A record without a uuid is not convertible and names nothing to keep."""
    collector = make(NodeCollector)
    assert collector._convert({"name": "x"}) is None
    assert collector.skipped == {}
    assert collector._key({"uuid": "n1"}) == "n1"
