"""The normalised Nova shapes: status table, host state, field readers."""

from __future__ import annotations

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.zones import ZoneCollector


@pytest.mark.parametrize(
    ("vm_state", "task_state", "status"),
    [
        ("active", None, "ACTIVE"),
        ("active", "pausing", "ACTIVE"),
        ("active", "rebooting", "REBOOT"),
        ("active", "reboot_started_hard", "HARD_REBOOT"),
        ("active", "updating_password", "PASSWORD"),
        ("active", "rebuild_spawning", "REBUILD"),
        ("active", "migrating", "MIGRATING"),
        ("active", "resize_prep", "RESIZE"),
        ("active", "resize_finish", "RESIZE"),
        ("building", "scheduling", "BUILD"),
        ("stopped", None, "SHUTOFF"),
        ("stopped", "resize_migrating", "RESIZE"),
        ("stopped", "rebuilding", "REBUILD"),
        ("stopped", "powering-on", "SHUTOFF"),
        ("resized", None, "VERIFY_RESIZE"),
        ("resized", "resize_reverting", "REVERT_RESIZE"),
        ("paused", None, "PAUSED"),
        ("paused", "migrating", "MIGRATING"),
        ("suspended", None, "SUSPENDED"),
        ("rescued", "unrescuing", "RESCUE"),
        ("error", None, "ERROR"),
        ("error", "rebuilding", "REBUILD"),
        ("error", "deleting", "ERROR"),
        ("deleted", None, "DELETED"),
        ("soft-delete", "restoring", "SOFT_DELETED"),
        ("shelved", None, "SHELVED"),
        ("shelved_offloaded", "unshelving", "SHELVED_OFFLOADED"),
        ("no-such-state", None, "UNKNOWN"),
    ],
)
def test_instance_status_follows_novas_state_map(vm_state, task_state, status):
    """vm_state and task_state map to the status Nova's API shows for them."""
    assert shapes.instance_status(vm_state, task_state) == status


@pytest.mark.parametrize(
    ("up", "enabled", "state"),
    [
        (True, True, "up"),
        (False, True, "down"),
        (True, False, "up-disabled"),
        (False, False, "down-disabled"),
    ],
)
def test_host_state_combines_liveness_and_status(up, enabled, state):
    """A host's state is up/down, suffixed -disabled when its service is disabled."""
    assert shapes.host_state(up, enabled) == state


@pytest.mark.parametrize(
    ("data", "required", "expected"),
    [
        ({"k": "v"}, False, "v"),
        ({"k": ""}, False, None),
        ({}, False, None),
        ({"k": None}, False, None),
    ],
)
def test_text_reads_blank_as_none(data, required, expected):
    """Nova's two spellings of 'no value' (None and '') read as None."""
    assert shapes.text(data, "k", required=required) == expected


@pytest.mark.parametrize(
    "data", [{"k": 3}, {"k": ""}, {}, ["k"]], ids=["int", "blank", "missing", "not-a-dict"]
)
def test_text_raises_on_wrong_type_or_missing_required(data):
    """A required field that is missing, blank or not a string raises ValueError."""
    with pytest.raises(ValueError, match="k"):
        shapes.text(data, "k", required=True)


def _zone_plugin() -> ZoneCollector:
    conf = cfg.ConfigOpts()
    ZoneCollector.register_options(conf, "nova.zone")
    conf(args=[], default_config_files=[])
    return ZoneCollector(conf)


def test_instance_entity_sorts_and_dedups_volume_relations():
    """Volume relations are one per distinct volume, whatever the source order."""
    plugin = _zone_plugin()
    a = shapes.Instance("u", "p", "active", host="h", volumes=("v2", "v1", "v2"))
    b = shapes.Instance("u", "p", "active", host="h", volumes=("v1", "v2"))
    ea = a.entity(plugin, volume_relations=True)
    assert [r.key for r in ea.relations] == ["v1", "v2"]
    assert ea.parent is not None
    assert ea.parent.key == "h"
    assert fingerprint.of(ea) == fingerprint.of(b.entity(plugin, volume_relations=True))


def test_instance_entity_without_volume_relations_ignores_volumes():
    """With volume_relations off, known and unknown volumes give the same entity."""
    plugin = _zone_plugin()
    known = shapes.Instance("u", "p", "active", volumes=("v1",))
    unknown = shapes.Instance("u", "p", "active", volumes=None)
    assert fingerprint.of(known.entity(plugin, volume_relations=False)) == fingerprint.of(
        unknown.entity(plugin, volume_relations=False)
    )


def test_unscheduled_instance_has_no_parent():
    """An instance without a host (building, shelved offloaded) has no parent."""
    entity = shapes.Instance("u", "p", "building").entity(_zone_plugin(), volume_relations=True)
    assert entity.parent is None
    assert entity.state == "BUILD"
