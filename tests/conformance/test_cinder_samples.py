"""Every Cinder volume sample of the OpenStack fixtures through the Cinder plugins.

API samples under ``cinder/api/volumes`` that hold detailed volume records
(what ``GET /volumes/detail`` returns) must each become a valid
``cinder.volume``; the brief list view (``id``, ``links``, ``name``) and the
summary are other endpoints the collector never reads and are ignored by
that rule.  Every notification sample under ``cinder/notifications`` is
either mapped to the expected change or ignored because its event type is
not ``volume.*`` (snapshots, capacity).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.model import Action, Change, Relation
from synchronizer.workers.converter import Converter
from synchronizer_plugins import openstack
from synchronizer_plugins.cinder import shapes
from synchronizer_plugins.cinder.notifications import CinderNotifications, action_of
from synchronizer_plugins.cinder.volumes import VolumeCollector


def _fixtures_root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if root.is_dir() else None


ROOT = _fixtures_root()
API_FILES = sorted((ROOT / "cinder" / "api" / "volumes").rglob("*.json")) if ROOT else []
NOTIFICATION_FILES = sorted((ROOT / "cinder" / "notifications").rglob("*.json")) if ROOT else []


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths] if ROOT else []


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


def notifications_in(path: Path) -> list[dict[str, Any]]:
    """The raw notifications of a sample file (one, or a dict of named ones)."""
    body = json.loads(path.read_text())
    samples = [body] if "event_type" in body else list(body.values())
    return [_raw(sample) for sample in samples]


def _raw(sample: dict[str, Any]) -> dict[str, Any]:
    metadata = sample.get("metadata") or {}
    return {
        "event_type": sample["event_type"],
        "payload": sample["payload"],
        "publisher_id": sample.get("publisher_id", ""),
        "priority": sample.get("priority", "INFO"),
        "timestamp": metadata.get("timestamp", ""),
        "message_id": metadata.get("message_id", ""),
    }


def volume_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Detailed volume records of an API sample ([] for other views)."""
    records = body.get("volumes") or ([body["volume"]] if "volume" in body else [])
    return [r for r in records if "status" in r]


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
def test_api_sample_becomes_valid_volumes(path):
    """Each detailed volume record becomes a cinder.volume with its status and project."""
    body = json.loads(path.read_text())
    records = volume_records(body)
    if not records:
        assert path.name in {"volumes-list-response.json", "volumes-list-summary-response.json"}
        return
    collector = make(VolumeCollector)
    for record in records:
        entity = shapes.from_api(collector, record)
        assert (entity.type, entity.key) == ("cinder.volume", record["id"])
        assert entity.state == record["status"]
        assert entity.project == record["os-vol-tenant-attr:tenant_id"]
        servers = sorted({a["server_id"] for a in record["attachments"]})
        assert [r.key for r in entity.relations] == servers
        assert fingerprint.of(entity, collector.volatile_properties)
        Change.from_dict(json.loads(Change(Action.CREATE, entity).to_json()))


def usage_payload(record: dict[str, Any]) -> dict[str, Any]:
    """What cinder.volume.volume_utils._usage_from_volume sends for an API volume."""
    return {
        "tenant_id": record["os-vol-tenant-attr:tenant_id"],
        "host": record["os-vol-host-attr:host"],
        "user_id": record["user_id"],
        "availability_zone": record["availability_zone"],
        "volume_id": record["id"],
        "volume_type": record.get("volume_type_id"),
        "display_name": record["name"],
        "launched_at": record["created_at"],
        "created_at": record["created_at"][:19] + "+00:00",
        "status": record["status"],
        "snapshot_id": record["snapshot_id"],
        "size": record["size"],
        "replication_status": record["replication_status"],
        "metadata": [],
        "volume_attachment": [
            {"instance_uuid": a["server_id"], "attach_status": "attached"}
            for a in record["attachments"]
        ],
    }


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_and_its_notification_fingerprint_alike(path):
    """A real API volume and the usage notification of that state fingerprint alike."""
    collector, plugin = make(VolumeCollector), make(CinderNotifications)
    converter = Converter([plugin], max_bytes=1 << 20)
    for record in volume_records(json.loads(path.read_text())):
        raw = {"event_type": "volume.update.end", "publisher_id": "volume.h1"}
        (change,) = converter.convert({**raw, "payload": usage_payload(record)})
        polled = shapes.from_api(collector, record)
        assert change.fingerprint == fingerprint.of(polled, collector.volatile_properties)


@pytest.mark.parametrize("path", NOTIFICATION_FILES, ids=_ids(NOTIFICATION_FILES))
def test_notification_sample_is_mapped_or_ignored_by_rule(path):
    """Each volume.* sample maps to the expected change; the others are not taken."""
    plugin = make(CinderNotifications)
    converter = Converter([plugin], max_bytes=1 << 20)
    for raw in notifications_in(path):
        note = converter.parse(raw)
        if not plugin.accepts(note.event_type, note.publisher_id):
            assert not note.event_type.startswith("volume."), note.event_type
            continue
        (change,) = plugin.convert(note)
        payload = raw["payload"]
        assert change.action is action_of(note.event_type)
        assert (change.type, change.key) == ("cinder.volume", payload["volume_id"])
        assert change.entity.state == payload["status"]
        assert change.entity.project == payload["tenant_id"]
        assert change.entity.timestamp == note.timestamp
        assert all(isinstance(r, Relation) for r in change.entity.relations)
        assert converter.convert(raw), "the daemon's converter drops it"
    assert converter.counts["dropped"] == 0
