"""Every Neutron network and port sample of the OpenStack fixtures through the plugins.

API samples under ``neutron/api/networks`` and ``neutron/api/ports`` that
hold networks or ports must each become a valid entity (the version
documents in ``networks/`` are ignored: they hold no resource).  Every
notification sample under ``neutron/notifications`` is mapped to the
expected change, or ignored because it is about a resource the plugin does
not model (``subnet``, ``rbac_policy``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.model import Action, Ref
from synchronizer.workers.converter import Converter
from synchronizer_plugins import openstack
from synchronizer_plugins.neutron import shapes
from synchronizer_plugins.neutron.collectors import NetworkCollector, PortCollector
from synchronizer_plugins.neutron.notifications import NeutronNotifications


def _fixtures_root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if root.is_dir() else None


ROOT = _fixtures_root()
API_FILES = (
    sorted(
        [
            *(ROOT / "neutron/api/networks").glob("*.json"),
            *(ROOT / "neutron/api/ports").glob("*.json"),
        ]
    )
    if ROOT
    else []
)
NOTIFICATION_FILES = sorted((ROOT / "neutron" / "notifications").rglob("*.json")) if ROOT else []
ACTIONS = {"create": Action.CREATE, "update": Action.UPDATE, "delete": Action.DELETE}
# Attributes the API shows an admin only; notifications carry the user's view.
ADMIN_ONLY = ("provider:", "binding:", "segments")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths] if ROOT else []


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


def resources(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(network|port, record)`` of every resource in an API sample."""
    found = []
    for kind in ("network", "port"):
        records = body.get(f"{kind}s") or ([body[kind]] if kind in body else [])
        found += [(kind, record) for record in records]
    return found


def raw_notifications(path: Path) -> list[dict[str, Any]]:
    body = json.loads(path.read_text())
    return [
        {
            "event_type": sample["event_type"],
            "payload": sample["payload"],
            "publisher_id": sample.get("publisher_id", ""),
            "timestamp": (sample.get("metadata") or {}).get("timestamp", ""),
            "message_id": (sample.get("metadata") or {}).get("message_id", ""),
        }
        for sample in body.values()
    ]


def test_fixtures_are_present():
    """The shared fixtures folder is present (required under CI)."""
    if ROOT is None:
        message = "OpenStack fixtures not found; set SYNCHRONIZER_FIXTURES"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert API_FILES
    assert NOTIFICATION_FILES


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_becomes_valid_entities(path):
    """Each network or port record becomes a valid entity with its state and project."""
    found = resources(json.loads(path.read_text()))
    if not found:
        assert path.name.startswith("version"), path.name
        return
    collectors = {"network": make(NetworkCollector), "port": make(PortCollector)}
    for kind, record in found:
        collector = collectors[kind]
        entity = collector.build(record)
        assert (entity.type, entity.key) == (f"neutron.{kind}", record["id"])
        assert entity.state == record["status"]
        assert entity.project == (record["project_id"] or None)
        if kind == "port":
            assert entity.parent == Ref("neutron.network", record["network_id"])
            compute = record["device_owner"].startswith("compute:")
            assert [r.key for r in entity.relations] == ([record["device_id"]] if compute else [])
        assert fingerprint.of(entity, collector.volatile_properties)


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_and_its_notification_fingerprint_alike(path):
    """A real API record and the notification of it (the user's view) fingerprint alike."""
    plugin = make(NeutronNotifications)
    converter = Converter([plugin], max_bytes=1 << 20)
    collectors = {"network": make(NetworkCollector), "port": make(PortCollector)}
    for kind, record in resources(json.loads(path.read_text())):
        view = {k: v for k, v in record.items() if not k.startswith(ADMIN_ONLY)}
        raw = {"event_type": f"{kind}.update.end", "publisher_id": "network.n1"}
        (change,) = converter.convert({**raw, "payload": {kind: view}})
        polled = collectors[kind].build(record)
        assert change.fingerprint == fingerprint.of(polled, shapes.VOLATILE)


@pytest.mark.parametrize("path", NOTIFICATION_FILES, ids=_ids(NOTIFICATION_FILES))
def test_notification_sample_is_mapped_or_ignored_by_rule(path):
    """Each network/port sample maps to the expected change; others are not taken."""
    plugin = make(NeutronNotifications)
    converter = Converter([plugin], max_bytes=1 << 20)
    for raw in raw_notifications(path):
        note = converter.parse(raw)
        kind, verb, _ = note.event_type.split(".")
        if not plugin.accepts(note.event_type, note.publisher_id):
            assert kind not in ("network", "port"), note.event_type
            continue
        (change,) = plugin.convert(note)
        payload = raw["payload"]
        key = payload[f"{kind}_id"] if verb == "delete" else payload[kind]["id"]
        assert (change.action, change.type, change.key) == (ACTIONS[verb], f"neutron.{kind}", key)
        if verb != "delete":
            assert change.entity.state == payload[kind]["status"]
            assert change.entity.project == payload[kind]["tenant_id"]
        assert change.entity.timestamp == note.timestamp
        assert converter.convert(raw)
    assert converter.counts["dropped"] == 0
