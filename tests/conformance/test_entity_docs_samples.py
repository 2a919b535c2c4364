"""The entity reference against OpenStack's samples: what they convert to is documented.

Every API record and notification of the shared fixtures that a shipped
plugin maps goes through that plugin's conversion (``build``,
``convert``); the entity must carry exactly its doc's properties and only
documented edges, and, for the samples copied from the service's own
repository, a documented state.  Samples other projects wrote by hand for
their own tests (Watcher's, Searchlight's) are not held to the state
vocabulary: one of Watcher's volumes is ``enabled``, which no Cinder shows.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synchronizer import timeutil
from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Entity
from synchronizer.plugin_base import EntityDoc, Notification, Plugin
from synchronizer_plugins.cinder.notifications import CinderNotifications
from synchronizer_plugins.cinder.volumes import VolumeCollector
from synchronizer_plugins.heat.stacks import StackCollector
from synchronizer_plugins.ironic.nodes import NodeCollector
from synchronizer_plugins.ironic.notifications import IronicNotifications
from synchronizer_plugins.neutron.collectors import NetworkCollector, PortCollector
from synchronizer_plugins.neutron.notifications import NeutronNotifications
from synchronizer_plugins.nova.notifications import NovaNotifications
from tests.conformance.test_cinder_samples import volume_records
from tests.conformance.test_ironic_samples import DETAILED
from tests.conformance.test_neutron_samples import resources
from tests.helpers import samples
from tests.unit.plugins.test_nova_records import make

HAND_WRITTEN = frozenset({"openstack/watcher", "openstack/searchlight"})

#: Notification stream → (plugin class, its options).
STREAMS: dict[str, tuple[type, dict[str, Any]]] = {
    "nova": (NovaNotifications, {"format": "versioned"}),
    "nova-legacy": (NovaNotifications, {"format": "legacy", "volume_relations": False}),
    "cinder": (CinderNotifications, {}),
    "neutron": (NeutronNotifications, {}),
    "ironic": (IronicNotifications, {}),
}


def _sources() -> dict[str, str]:
    """Sample path (below the fixtures folder) → the repository it was copied from."""
    if samples.ROOT is None:
        return {}
    with open(samples.ROOT / "SOURCES.tsv", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return {row["local_path"].removeprefix("openstack/"): row["repo"] for row in rows}


SOURCES = _sources()


def _notification(raw: dict[str, Any]) -> Notification:
    stamp = raw["timestamp"]
    return Notification(
        raw["event_type"],
        raw["payload"],
        raw["publisher_id"],
        raw["priority"].lower(),
        timeutil.normalize(stamp) if stamp else timeutil.now(),
    )


def _stated(plugin: Any, raw: dict[str, Any]) -> list[Entity]:
    if not plugin.accepts(raw["event_type"], raw["publisher_id"]):
        return []
    try:
        changes = plugin.convert(_notification(raw))
    except InvalidNotification:
        return []  # the services' own conformance suites say which samples are invalid
    return [c.entity for c in changes if c.action is not Action.DELETE]


Converted = list[tuple[type[Plugin], Entity]]


def _pushed(stream: str) -> Callable[[Path], Converted]:
    cls, options = STREAMS[stream]

    def convert(path: Path) -> Converted:
        plugin = make(cls, **options)
        return [(cls, e) for raw in samples.notifications_in(path) for e in _stated(plugin, raw)]

    return convert


def _polled(cls: type[Plugin], records: Callable[[Any], list[Any]]) -> Callable[[Path], Converted]:
    def convert(path: Path) -> Converted:
        plugin = make(cls)
        return [(cls, plugin.build(r)) for r in records(json.loads(path.read_text()))]

    return convert


def _neutron(path: Path) -> Converted:
    kinds = {"network": NetworkCollector, "port": PortCollector}
    found = resources(json.loads(path.read_text()))
    return [(kinds[kind], make(kinds[kind]).build(record)) for kind, record in found]


def _nodes(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("nodes") or [body]


def _glob(pattern: str) -> list[Path]:
    return sorted(samples.ROOT.glob(pattern)) if samples.ROOT else []


CASES: list[tuple[Path, Callable[[Path], Converted]]] = [
    *((p, _pushed(stream)) for stream in STREAMS for p in samples.STREAMS[stream]),
    *((p, _polled(VolumeCollector, volume_records)) for p in _glob("cinder/api/volumes/**/*.json")),
    *(
        (p, _polled(NodeCollector, _nodes))
        for p in _glob("ironic/api/*.json")
        if p.name in DETAILED
    ),
    *((p, _neutron) for p in _glob("neutron/api/networks/*.json")),
    *((p, _neutron) for p in _glob("neutron/api/ports/*.json")),
]


def _id(path: Path) -> str:
    return str(path.relative_to(samples.ROOT)) if samples.ROOT else str(path)


def _doc(cls: type[Plugin], type_: str) -> EntityDoc:
    (doc,) = [d for d in cls.entity_docs if d.type == type_]
    return doc


def _check(entity: Entity, doc: EntityDoc, *, state: bool) -> None:
    assert sorted(entity.properties) == sorted(doc.properties)
    if state:
        assert entity.state in doc.states, f"{entity.type} state {entity.state!r} is undocumented"
    assert (entity.parent.type if entity.parent else doc.parent) == doc.parent
    kinds = {(r.relation, r.type) for r in doc.relations}
    assert {(r.relation, r.type) for r in entity.relations} <= kinds


@pytest.mark.parametrize(("path", "convert"), CASES, ids=[_id(p) for p, _ in CASES])
def test_sample_converts_to_documented_entities(path, convert):
    """What a sample converts to fits its type's doc: properties, edges, and state if official."""
    samples.require()
    official = SOURCES.get(_id(path)) not in HAND_WRITTEN
    for cls, entity in convert(path):
        _check(entity, _doc(cls, entity.type), state=official)


def test_sample_stacks_are_documented_entities():
    """Every Heat stack sample becomes a heat.stack in a documented state, with its properties."""
    samples.require()
    collector = make(StackCollector)
    stacks = samples.heat_stacks()
    assert stacks
    for record in stacks:
        _check(collector.build(record), _doc(StackCollector, "heat.stack"), state=True)


def test_the_samples_hold_entities_of_every_openstack_type():
    """The samples above do convert, to entities of every documented OpenStack type but zones."""
    samples.require()
    seen = {entity.type for path, convert in CASES for _cls, entity in convert(path)}
    assert seen >= {
        "nova.instance",
        "cinder.volume",
        "neutron.network",
        "neutron.port",
        "ironic.node",
    }
