"""The Neutron network and port shapes and the notification plugin."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Ref, Relation
from synchronizer.plugin_base import Notification
from synchronizer_plugins import openstack
from synchronizer_plugins.neutron import shapes
from synchronizer_plugins.neutron.collectors import NetworkCollector, PortCollector
from synchronizer_plugins.neutron.notifications import NeutronNotifications

NET_ID = "0d8b1c8e-5f3a-4a7e-9d1c-6b2f8e4a7c10"
PORT_ID = "4e1f6c2a-9b3d-4f8e-a7c5-2d1e0b9f8a36"
SERVER_ID = "7a2c9e1f-3b4d-4c5e-8f6a-1b2c3d4e5f60"
PROJECT = "5fe7c4e4e492490393c674089a178e19"

# As an admin lists it: with admin-only attributes the user's view lacks.
API_NETWORK: dict[str, Any] = {
    "id": NET_ID,
    "name": "private",
    "description": "",
    "status": "ACTIVE",
    "admin_state_up": True,
    "shared": False,
    "mtu": 1450,
    "router:external": False,
    "port_security_enabled": True,
    "subnets": ["s-2", "s-1"],
    "tags": ["b", "a"],
    "project_id": PROJECT,
    "tenant_id": PROJECT,
    "created_at": "2024-03-21T16:19:51Z",
    "updated_at": "2024-03-22T08:00:00Z",
    "revision_number": 7,
    "provider:network_type": "vxlan",
    "provider:segmentation_id": 1004,
    "availability_zones": ["nova"],
}

API_PORT: dict[str, Any] = {
    "id": PORT_ID,
    "name": "",
    "description": "",
    "status": "ACTIVE",
    "admin_state_up": True,
    "mac_address": "fa:16:3e:bf:7f:89",
    "network_id": NET_ID,
    "device_id": SERVER_ID,
    "device_owner": "compute:az1",
    "fixed_ips": [
        {"subnet_id": "s-2", "ip_address": "10.0.0.5"},
        {"subnet_id": "s-1", "ip_address": "192.168.0.5"},
    ],
    "security_groups": ["sg-2", "sg-1"],
    "port_security_enabled": True,
    "tags": [],
    "project_id": PROJECT,
    "tenant_id": PROJECT,
    "created_at": "2024-03-21T16:36:56Z",
    "updated_at": "2024-03-21T16:47:47Z",
    "revision_number": 4,
    "binding:host_id": "compute-1",
    "binding:vif_type": "ovs",
}


def user_view(record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What a notification carries: the user's view, older releases without revisions."""
    hidden = ("provider:", "binding:", "project_id", "revision_number", "availability_zones")
    view = {k: v for k, v in record.items() if not k.startswith(hidden)}
    view.update(changes)
    return view


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


@pytest.fixture
def plugin() -> NeutronNotifications:
    return make(NeutronNotifications)


def notify(plugin: NeutronNotifications, event_type: str, payload: Any) -> list:
    note = Notification(event_type, payload, "network.node1", timestamp="2024-03-22 09:00:00")
    return plugin.convert(note)


def test_network_maps_to_the_normalised_shape():
    """An API network becomes a neutron.network without admin-only attributes."""
    entity = shapes.network(make(NetworkCollector), API_NETWORK)
    assert (entity.type, entity.key, entity.state, entity.project) == (
        "neutron.network",
        NET_ID,
        "ACTIVE",
        PROJECT,
    )
    assert entity.properties["subnets"] == ["s-1", "s-2"]
    assert entity.properties["tags"] == ["a", "b"]
    assert entity.properties["created_at"] == "2024-03-21T16:19:51.000000Z"
    assert not any(k.startswith("provider:") for k in entity.properties)


def test_port_maps_to_the_normalised_shape():
    """An API port has its network as parent and its server as an attached relation."""
    entity = shapes.port(make(PortCollector), API_PORT)
    assert entity.parent == Ref("neutron.network", NET_ID)
    assert entity.relations == (Relation("attached", "nova.instance", SERVER_ID),)
    assert entity.properties["fixed_ips"][0] == {"subnet_id": "s-1", "ip_address": "192.168.0.5"}
    assert entity.properties["security_groups"] == ["sg-1", "sg-2"]
    assert "binding:host_id" not in entity.properties


@pytest.mark.parametrize(
    ("owner", "device", "relations"),
    [
        ("compute:nova", SERVER_ID, 1),
        ("compute:None", "", 0),
        ("network:router_interface", SERVER_ID, 0),
        ("network:dhcp", "dhcp-1", 0),
        ("", "", 0),
        (None, None, 0),
    ],
)
def test_only_compute_ports_relate_to_instances(owner, device, relations):
    """A port relates to an instance only when a compute: owner and a device are set."""
    entity = shapes.port(
        make(PortCollector), {**API_PORT, "device_owner": owner, "device_id": device}
    )
    assert len(entity.relations) == relations


@pytest.mark.parametrize(
    ("event_type", "record", "collector_cls", "build"),
    [
        ("network.update.end", API_NETWORK, NetworkCollector, shapes.network),
        ("port.update.end", API_PORT, PortCollector, shapes.port),
    ],
)
def test_poll_and_push_of_one_state_have_one_fingerprint(
    plugin, event_type, record, collector_cls, build
):
    """The admin's API record and the user's notification of one state fingerprint alike."""
    resource = event_type.split(".")[0]
    payload = {resource: user_view(record, updated_at="2024-04-01T00:00:00Z")}
    (change,) = notify(plugin, event_type, payload)
    collector = make(collector_cls)
    polled = build(collector, record)
    assert fingerprint.of(polled, collector.volatile_properties) == fingerprint.of(
        change.entity, plugin.volatile_properties
    )


@pytest.mark.parametrize(
    ("event_type", "payload", "action", "key", "state"),
    [
        ("network.create.end", {"network": API_NETWORK}, Action.CREATE, NET_ID, "ACTIVE"),
        ("network.update.end", {"network": API_NETWORK}, Action.UPDATE, NET_ID, "ACTIVE"),
        ("network.delete.end", {"network_id": NET_ID}, Action.DELETE, NET_ID, None),
        ("port.create.end", {"port": API_PORT}, Action.CREATE, PORT_ID, "ACTIVE"),
        ("port.update.end", {"port": API_PORT}, Action.UPDATE, PORT_ID, "ACTIVE"),
        ("port.delete.end", {"port_id": PORT_ID}, Action.DELETE, PORT_ID, None),
        (
            "port.delete.end",
            {"port_id": PORT_ID, "port": API_PORT},
            Action.DELETE,
            PORT_ID,
            "ACTIVE",
        ),
    ],
)
def test_event_types_map_to_changes(plugin, event_type, payload, action, key, state):
    """Create, update and delete events give the matching change of the resource."""
    (change,) = notify(plugin, event_type, payload)
    assert (change.action, change.key, change.entity.state) == (action, key, state)
    assert change.entity.timestamp == "2024-03-22T09:00:00.000000Z"


def test_bulk_create_gives_one_change_per_resource(plugin):
    """A bulk port create notification gives a create per port."""
    second = {**API_PORT, "id": "p-2"}
    changes = notify(plugin, "port.create.end", {"ports": [API_PORT, second]})
    assert [(c.action, c.key) for c in changes] == [
        (Action.CREATE, PORT_ID),
        (Action.CREATE, "p-2"),
    ]


@pytest.mark.parametrize(
    ("event_type", "publisher", "accepted"),
    [
        ("network.create.end", "network.node1", True),
        ("port.delete.end", "network.node1", True),
        ("port.create.start", "network.node1", False),
        ("subnet.create.end", "network.node1", False),
        ("rbac_policy.create.end", "network.node1", False),
        ("router.update.end", "network.node1", False),
        ("port.update.end", "compute.node1", False),
    ],
)
def test_filters_take_only_network_and_port_end_events(plugin, event_type, publisher, accepted):
    """Only network/port create, update and delete .end events are taken."""
    assert plugin.accepts(event_type, publisher) is accepted


@pytest.mark.parametrize(
    ("event_type", "payload", "message"),
    [
        ("port.update.end", "text", "payload must be an object"),
        ("port.update.end", {}, "no 'port' object"),
        ("port.update.end", {"port": {"name": "x"}}, "id must be"),
        ("port.update.end", {"port": {**API_PORT, "fixed_ips": "10.0.0.1"}}, "fixed_ips"),
        ("port.update.end", {"port": {**API_PORT, "security_groups": [1]}}, "security_groups"),
        ("network.update.end", {"network": {**API_NETWORK, "subnets": "s-1"}}, "subnets"),
        ("network.update.end", {"network": {**API_NETWORK, "created_at": 5}}, "timestamp"),
        ("network.delete.end", {"id": NET_ID}, "network_id"),
        ("port.delete.end", {"port_id": ""}, "port_id"),
        ("port.rename.end", {"port": API_PORT}, "unexpected Neutron event type"),
    ],
)
def test_malformed_payloads_are_invalid(plugin, event_type, payload, message):
    """A malformed payload raises InvalidNotification naming the problem."""
    with pytest.raises(InvalidNotification, match=message):
        notify(plugin, event_type, payload)


def test_collector_skips_a_malformed_record():
    """A malformed record with an id is reported skipped (it keeps its state); keyless, not."""
    collector = make(PortCollector)
    assert collector._convert({"name": "x"}) is None
    assert collector.skipped == {}
    assert collector._convert({**API_PORT, "security_groups": "default"}) is None
    assert list(collector.skipped) == [("neutron.port", PORT_ID)]
    assert collector._convert(API_PORT).key == PORT_ID


def test_volatile_properties_are_carried_but_not_fingerprinted():
    """revision_number and updated_at are carried and declared volatile."""
    collector = make(NetworkCollector)
    entity = shapes.network(collector, API_NETWORK)
    bumped = shapes.network(collector, {**API_NETWORK, "revision_number": 8})
    assert entity.properties["revision_number"] == 7
    assert collector.volatile_properties == {"revision_number", "updated_at"}
    assert fingerprint.of(entity, collector.volatile_properties) == fingerprint.of(
        bumped, collector.volatile_properties
    )
