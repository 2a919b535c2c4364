"""Every Heat stack sample of the OpenStack fixtures through the Heat plugins.

API samples holding stacks (``stacks-list-response``, ``stack-show-response``)
must each become a valid ``heat.stack`` whose state is the ``stack_status``;
events, resources, services and versions hold no stack and are ignored by
that rule.  The fixtures hold no Heat notification, so the pair test builds
the notification Heat's ``format_notification_body`` sends for each sample.
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
from synchronizer_plugins.heat import shapes
from synchronizer_plugins.heat.notifications import HeatNotifications
from synchronizer_plugins.heat.stacks import StackCollector
from tests.helpers.samples import heat_notification_body as notification_body


def _fixtures_root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if root.is_dir() else None


ROOT = _fixtures_root()
API_FILES = sorted((ROOT / "heat" / "api").glob("*.json")) if ROOT else []


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths] if ROOT else []


def make(cls: type) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    return cls(conf)


def stacks(path: Path) -> list[dict[str, Any]]:
    body = json.loads(path.read_text())
    return body.get("stacks") or ([body["stack"]] if "stack" in body else [])


def test_fixtures_are_present():
    """The shared fixtures folder is present (required under CI)."""
    if ROOT is None:
        message = "OpenStack fixtures not found; set SYNCHRONIZER_FIXTURES"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert any(stacks(p) for p in API_FILES)


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_becomes_valid_stacks(path):
    """Each stack record becomes a heat.stack whose state is its stack_status."""
    collector = make(StackCollector)
    for record in stacks(path):
        entity = shapes.from_api(collector, record)
        assert (entity.type, entity.key) == ("heat.stack", record["id"])
        assert entity.state == record["stack_status"]
        assert entity.project
        assert entity.project in record["links"][0]["href"]
        assert entity.properties["name"] == record["stack_name"]
        assert fingerprint.of(entity, collector.volatile_properties)


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample_and_its_notification_fingerprint_alike(path):
    """A real API stack and Heat's notification of that state fingerprint alike."""
    plugin, collector = make(HeatNotifications), make(StackCollector)
    converter = Converter([plugin], max_bytes=1 << 20)
    for record in stacks(path):
        polled = shapes.from_api(collector, record)
        raw = {
            "event_type": "orchestration.stack.create.end",
            "publisher_id": "orchestration.h1",
            "payload": notification_body(record, polled.project),
        }
        (change,) = converter.convert(raw)
        assert change.fingerprint == fingerprint.of(polled, collector.volatile_properties)
