"""Each shipped plugin's ``entity_docs`` against the entities its conversion code really builds.

The records are the API- and notification-shaped fixtures of the plugins'
own unit tests, run through the code the collectors and notification
plugins run (``build``, ``server_entity``, ``host_facts``, ``convert``...),
so a property added to a shape and not to its doc (or the other way
round) fails here, as does a state, parent or relation the doc omits.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification, Plugin
from synchronizer_plugins.cinder.notifications import CinderNotifications
from synchronizer_plugins.cinder.volumes import VolumeCollector
from synchronizer_plugins.heat.notifications import HeatNotifications
from synchronizer_plugins.heat.stacks import StackCollector
from synchronizer_plugins.ironic.nodes import NodeCollector
from synchronizer_plugins.ironic.notifications import IronicNotifications
from synchronizer_plugins.nagios.hosts import HostCollector as NagiosHostCollector
from synchronizer_plugins.nagios.services import ServiceCollector
from synchronizer_plugins.neutron.collectors import NetworkCollector, PortCollector
from synchronizer_plugins.neutron.notifications import NeutronNotifications
from synchronizer_plugins.nova.hosts import HostCollector, host_facts
from synchronizer_plugins.nova.instances import InstanceCollector, server_entity, server_instance
from synchronizer_plugins.nova.notifications import NovaNotifications
from synchronizer_plugins.nova.zones import ZoneCollector, zone_facts
from tests.unit.plugins import test_cinder_plugins as cinder
from tests.unit.plugins import test_heat_plugins as heat
from tests.unit.plugins import test_ironic_plugins as ironic
from tests.unit.plugins import test_nagios_plugins as nagios
from tests.unit.plugins import test_neutron_plugins as neutron
from tests.unit.plugins import test_nova_notifications as nova_push
from tests.unit.plugins import test_nova_records as nova

Build = Callable[[Any], list[Entity]]


def _changes(notification: Notification) -> Build:
    """What the plugin's ``convert`` states, deletes aside (they may carry only a key)."""

    def build(plugin: Any) -> list[Entity]:
        changes = plugin.convert(notification)
        return [c.entity for c in changes if c.action is not Action.DELETE]

    return build


def _nagios(cls: type) -> Plugin:
    conf = cfg.ConfigOpts()
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


def _nova_legacy(plugin_cls: type) -> Plugin:
    return nova.make(plugin_cls, format="legacy", volume_relations=False)


NAGIOS_HOST = {
    **{k: v for k, v in nagios.RECORD.items() if k not in ("host_name", "description")},
    "name": "compute-1",
}
ZONE_RECORD = {"zoneName": "az1", "zoneState": {"available": True}, "hosts": {"c1": {}}}

#: (id, plugin class, how to build it, what it converts).
CASES: list[tuple[str, type, Callable[[type], Any], Build]] = [
    (
        "nova.instance",
        InstanceCollector,
        nova.make,
        lambda p: [server_entity(nova.SERVER_247, "m1.tiny", p, True)],
    ),
    (
        "nova.instance-validating",
        InstanceCollector,
        nova.make,
        lambda p: [server_instance(nova.SERVER_247, "m1.tiny").entity(p, volume_relations=True)],
    ),
    (
        "nova.host",
        HostCollector,
        nova.make,
        lambda p: [host_facts("host1", nova.SERVICE, [nova._hypervisor(1, "n1")]).entity(p)],
    ),
    ("nova.zone", ZoneCollector, nova.make, lambda p: [zone_facts(ZONE_RECORD).entity(p)]),
    ("cinder.volume", VolumeCollector, cinder.make, lambda p: [p.build(cinder.API_VOLUME)]),
    ("neutron.network", NetworkCollector, neutron.make, lambda p: [p.build(neutron.API_NETWORK)]),
    ("neutron.port", PortCollector, neutron.make, lambda p: [p.build(neutron.API_PORT)]),
    ("ironic.node", NodeCollector, ironic.make, lambda p: [p.build(ironic.API_NODE)]),
    ("heat.stack", StackCollector, heat.make, lambda p: [p.build(heat.API_STACK)]),
    (
        "nagios.service",
        ServiceCollector,
        _nagios,
        lambda p: [p._convert("compute-1", "Current Load", nagios.RECORD)],
    ),
    (
        "nagios.host",
        NagiosHostCollector,
        _nagios,
        lambda p: [p._host("compute-1", NAGIOS_HOST)],
    ),
    (
        "nova.notifications-versioned",
        NovaNotifications,
        nova_push.make,
        _changes(nova_push.versioned("instance.power_off.end")),
    ),
    (
        "nova.notifications-legacy",
        NovaNotifications,
        _nova_legacy,
        _changes(
            Notification(
                "compute.instance.power_off.end",
                nova_push.legacy_payload(),
                "compute.compute",
                timestamp=nova_push.TIME,
            )
        ),
    ),
    (
        "cinder.notifications",
        CinderNotifications,
        cinder.make,
        lambda p: [c.entity for c in cinder.notify(p, "volume.attach.end", cinder.PAYLOAD)],
    ),
    (
        "neutron.notifications-network",
        NeutronNotifications,
        neutron.make,
        lambda p: [
            c.entity
            for c in neutron.notify(
                p, "network.update.end", {"network": neutron.user_view(neutron.API_NETWORK)}
            )
        ],
    ),
    (
        "neutron.notifications-port",
        NeutronNotifications,
        neutron.make,
        lambda p: [
            c.entity
            for c in neutron.notify(
                p, "port.update.end", {"port": neutron.user_view(neutron.API_PORT)}
            )
        ],
    ),
    (
        "ironic.notifications",
        IronicNotifications,
        ironic.make,
        lambda p: [
            c.entity
            for c in ironic.notify(
                p, "baremetal.node.power_set.end", ironic.payload("NodeSetPowerStatePayload")
            )
        ],
    ),
    (
        "heat.notifications",
        HeatNotifications,
        heat.make,
        lambda p: [
            c.entity for c in heat.notify(p, "orchestration.stack.update.end", heat.PAYLOAD)
        ],
    ),
]


def _built(cls: type, make: Callable[[type], Any], build: Build) -> list[Entity]:
    entities = build(make(cls))
    assert entities, "the case builds no entity"
    return entities


def _doc(cls: type, type_: str) -> EntityDoc:
    docs = [d for d in cls.entity_docs if d.type == type_]
    assert len(docs) == 1, f"{cls.name} documents {type_} {len(docs)} times"
    return docs[0]


@pytest.mark.parametrize(
    ("cls", "make", "build"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_built_entities_have_exactly_the_documented_properties(cls, make, build):
    """Each property a plugin's conversion produces is documented; each documented one, produced."""
    for entity in _built(cls, make, build):
        doc = _doc(cls, entity.type)
        assert entity.type in cls.entity_types
        assert sorted(entity.properties) == sorted(doc.properties)


@pytest.mark.parametrize(
    ("cls", "make", "build"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_built_entities_stay_within_the_documented_edges_and_states(cls, make, build):
    """A built entity's state, project, parent type and relation kinds are ones its doc lists."""
    for entity in _built(cls, make, build):
        doc = _doc(cls, entity.type)
        assert entity.state in doc.states
        assert entity.project is None or doc.project is not None
        assert (entity.parent.type if entity.parent else doc.parent) == doc.parent
        kinds = {(r.relation, r.type) for r in doc.relations}
        assert {(r.relation, r.type) for r in entity.relations} <= kinds


def test_every_documented_edge_is_produced_by_some_case():
    """Each documented parent and relation kind shows up on an entity these cases build."""
    parents: dict[str, set[str | None]] = collections.defaultdict(set)
    relations: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    docs: dict[str, EntityDoc] = {}
    for _id, cls, make, build in CASES:
        for entity in _built(cls, make, build):
            docs[entity.type] = _doc(cls, entity.type)
            parents[entity.type].add(entity.parent.type if entity.parent else None)
            relations[entity.type] |= {(r.relation, r.type) for r in entity.relations}
    for type_, doc in docs.items():
        assert doc.parent in parents[type_], type_
        assert relations[type_] == {(r.relation, r.type) for r in doc.relations}, type_


def test_the_cases_cover_every_shipped_plugin_with_types():
    """Every shipped plugin that produces fixed types is run through its conversion above."""
    from synchronizer import plugin_loader

    shipped = {cls for _name, cls in plugin_loader.shipped_plugins() if cls.entity_types}
    assert shipped == {cls for _id, cls, _make, _build in CASES}
