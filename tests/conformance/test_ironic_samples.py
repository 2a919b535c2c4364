"""Every Ironic node sample of the OpenStack fixtures through the Ironic plugins.

API samples: the detailed node views (``nodes-list-details-response``,
``node-show-response``, what ``GET /v1/nodes/detail`` returns) must each
become a valid ``ironic.node``; the other samples (the brief node list the
collector never reads, node states, ports, conductors, allocations, API
roots) are ignored by that rule.  Every notification sample is mapped to the
expected change, or ignored because it is not a ``baremetal.node.*`` event
(or is a ``create.start``/``create.error``, which describe no stored node).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.workers.converter import Converter
from synchronizer_plugins import openstack
from synchronizer_plugins.ironic import shapes
from synchronizer_plugins.ironic.nodes import NodeCollector
from synchronizer_plugins.ironic.notifications import UNSTORED, IronicNotifications, action_of


def _fixtures_root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if root.is_dir() else None


ROOT = _fixtures_root()
API_FILES = sorted((ROOT / "ironic" / "api").glob("*.json")) if ROOT else []
NOTIFICATION_FILES = sorted((ROOT / "ironic" / "notifications").glob("*.json")) if ROOT else []
DETAILED = {"nodes-list-details-response.json", "node-show-response.json"}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths] if ROOT else []


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


def nodes(path: Path) -> list[dict[str, Any]]:
    body = json.loads(path.read_text())
    return body.get("nodes") or [body]


def payload_fields() -> set[str]:
    """The fields of Ironic's NodePayload, as a real sample shows them."""
    sample = json.loads(
        (ROOT / "ironic/notifications/baremetal.node.console_set.end.json").read_text()
    )
    return set(sample["payload"]["ironic_object.data"])


def test_fixtures_are_present():
    """The shared fixtures folder is present (required under CI)."""
    if ROOT is None:
        message = "OpenStack fixtures not found; set SYNCHRONIZER_FIXTURES"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert {p.name for p in API_FILES} >= DETAILED
    assert NOTIFICATION_FILES


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_becomes_valid_nodes(path):
    """Each detailed node becomes an ironic.node in its provision state."""
    if path.name not in DETAILED:
        return
    collector = make(NodeCollector)
    for record in nodes(path):
        entity = shapes.node(collector, record)
        assert (entity.type, entity.key) == ("ironic.node", record["uuid"])
        assert entity.state == record["provision_state"]
        assert entity.project == (record["owner"] or record["lessee"])
        instance = record["instance_uuid"]
        assert [r.key for r in entity.relations] == ([instance] if instance else [])
        assert entity.properties["power_state"] == record["power_state"]
        assert entity.properties["maintenance"] is record["maintenance"]
        assert fingerprint.of(entity, collector.volatile_properties)


@pytest.mark.parametrize("path", [p for p in API_FILES if p.name in DETAILED], ids=str)
def test_api_sample_and_its_notification_fingerprint_alike(path):
    """A real API node and the NodePayload of that state fingerprint alike."""
    plugin, collector = make(IronicNotifications), make(NodeCollector)
    converter = Converter([plugin], max_bytes=1 << 20)
    fields = payload_fields()
    for record in nodes(path):
        data = {k: v for k, v in record.items() if k in fields}
        payload = {
            "ironic_object.namespace": "ironic",
            "ironic_object.name": "NodePayload",
            "ironic_object.version": "1.15",
            "ironic_object.data": data,
        }
        raw = {"event_type": "baremetal.node.update.end", "publisher_id": "ironic-api.a1"}
        (change,) = converter.convert({**raw, "payload": payload})
        polled = shapes.node(collector, record)
        assert change.fingerprint == fingerprint.of(polled, collector.volatile_properties)


@pytest.mark.parametrize("path", NOTIFICATION_FILES, ids=_ids(NOTIFICATION_FILES))
def test_notification_sample_is_mapped_or_ignored_by_rule(path):
    """Each node sample maps to the expected change; other objects are not taken."""
    plugin = make(IronicNotifications)
    converter = Converter([plugin], max_bytes=1 << 20)
    raw = json.loads(path.read_text())
    note = converter.parse(raw)
    if not plugin.accepts(note.event_type, note.publisher_id):
        assert not note.event_type.startswith("baremetal.node."), note.event_type
        return
    if note.event_type in UNSTORED:
        assert plugin.convert(note) == []
        return
    data = raw["payload"]["ironic_object.data"]
    (change,) = plugin.convert(note)
    assert change.action is action_of(note.event_type)
    assert (change.type, change.key) == ("ironic.node", data["uuid"])
    assert change.entity.state == data["provision_state"]
    assert change.entity.properties["power_state"] == data["power_state"]
    assert [r.key for r in change.entity.relations] == (
        [data["instance_uuid"]] if data["instance_uuid"] else []
    )
    assert converter.convert(raw)
    assert converter.counts["dropped"] == 0
