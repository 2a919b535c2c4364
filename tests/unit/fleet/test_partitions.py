"""Partitions: grouped by entity-type namespace; owners balanced, deterministic, sticky."""

import pytest

from synchronizer.fleet.ownership import lease_url
from synchronizer.fleet.partitions import assign, group, namespace
from synchronizer_plugins.cinder.notifications import CinderNotifications
from synchronizer_plugins.cinder.volumes import VolumeCollector
from synchronizer_plugins.nova.hosts import HostCollector
from synchronizer_plugins.nova.instances import InstanceCollector
from synchronizer_plugins.nova.notifications import NovaNotifications


def test_push_and_poll_of_a_service_are_one_partition():
    """Every nova.* plugin, collectors and notifications, goes to the partition nova."""
    classes = {
        "nova.instance": InstanceCollector,
        "nova.host": HostCollector,
        "nova.notifications": NovaNotifications,
        "cinder.volume": VolumeCollector,
        "cinder.notifications": CinderNotifications,
    }
    parts = {p.name: p for p in group(classes)}
    assert sorted(parts) == ["cinder", "nova"]
    assert parts["nova"].plugins == ("nova.host", "nova.instance", "nova.notifications")
    assert "nova.instance" in parts["nova"].types


@pytest.mark.parametrize(
    ("plugin", "types", "expected"),
    [
        ("x.y", ("nova.instance", "nova.host"), "nova"),
        ("static", ("dc.rack", "app.service"), "app"),
        ("mine.thing", (), "mine"),
    ],
)
def test_namespace(plugin, types, expected):
    """A plugin goes with the namespace of its types (its name's when it has none)."""
    assert namespace(plugin, types) == expected


PARTS = [f"p{i}" for i in range(12)]


@pytest.mark.parametrize("members", [["a"], ["a", "b"], ["a", "b", "c"], list("abcde")])
def test_assignment_is_balanced_and_the_same_whatever_the_order(members):
    """No member owns more than one partition above another; order does not matter."""
    owners = assign(PARTS, members)
    assert set(owners) == set(PARTS)
    loads = [list(owners.values()).count(m) for m in members]
    assert max(loads) - min(loads) <= 1
    assert assign(list(reversed(PARTS)), list(reversed(members))) == owners


def test_a_member_leaving_moves_its_partitions_and_few_others():
    """When one of four members leaves, most partitions keep their owner."""
    before = assign(PARTS, list("abcd"))
    after = assign(PARTS, list("abc"))
    moved = [p for p in PARTS if before[p] != after[p]]
    lost = [p for p in PARTS if before[p] == "d"]
    assert set(lost) <= set(moved)
    assert len(moved) <= len(lost) + 3


def test_no_member_no_owner():
    assert assign(PARTS, []) == {}


def test_lease_url_sets_the_timeouts_unless_given():
    """The heartbeat timeout becomes tooz's membership and lock timeouts."""
    assert "lock_timeout=3" in lease_url("redis://127.0.0.1:6379", 3)
    assert "timeout=9" in lease_url("redis://127.0.0.1:6379?timeout=9", 3)
