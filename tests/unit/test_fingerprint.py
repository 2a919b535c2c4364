"""Fingerprints: stable, canonical, blind to volatile parts."""

import os
import subprocess
import sys

import pytest

from synchronizer import fingerprint
from synchronizer.model import Entity, Ref, Relation, Source


def _entity(**kw):
    base = {
        "type": "nova.instance",
        "key": "u1",
        "state": "ACTIVE",
        "project": "p1",
        "parent": Ref("nova.host", "h1"),
        "relations": (Relation("attached", "cinder.volume", "v1"),),
        "properties": {"name": "web", "flavor": {"vcpus": 2, "ram": 512}},
        "timestamp": "2026-01-01T00:00:00Z",
        "source": Source("poll", "nova.instance"),
    }
    base.update(kw)
    return Entity(**base)


def test_dict_order_does_not_matter():
    """Two entities whose properties differ only in key order share a fingerprint."""
    a = _entity(properties={"name": "web", "flavor": {"vcpus": 2, "ram": 512}})
    b = _entity(properties={"flavor": {"ram": 512, "vcpus": 2}, "name": "web"})
    assert fingerprint.of(a) == fingerprint.of(b)


def test_relation_order_does_not_matter():
    """The order relations are listed in does not change the fingerprint."""
    r1, r2 = Relation("attached", "cinder.volume", "v1"), Relation("port", "neutron.port", "p")
    assert fingerprint.of(_entity(relations=(r1, r2))) == fingerprint.of(
        _entity(relations=(r2, r1))
    )


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": "2030-01-01T00:00:00Z"},
        {"source": Source("push", "nova.notifications")},
    ],
)
def test_volatile_parts_are_ignored(change):
    """Timestamp and source never change the fingerprint."""
    assert fingerprint.of(_entity()) == fingerprint.of(_entity(**change))


@pytest.mark.parametrize(
    "change",
    [
        {"state": "SHUTOFF"},
        {"project": "p2"},
        {"parent": Ref("nova.host", "h2")},
        {"relations": ()},
        {"properties": {"name": "web2", "flavor": {"vcpus": 2, "ram": 512}}},
        {"key": "u2"},
    ],
)
def test_content_changes_change_the_fingerprint(change):
    """Any change of state, project, parent, relations, properties or key is seen."""
    assert fingerprint.of(_entity()) != fingerprint.of(_entity(**change))


def test_declared_volatile_properties_are_ignored():
    """A property the plugin declares volatile does not move the fingerprint."""
    a = _entity(properties={"name": "web", "last_check": 1})
    b = _entity(properties={"name": "web", "last_check": 2})
    assert fingerprint.of(a, {"last_check"}) == fingerprint.of(b, {"last_check"})
    assert fingerprint.of(a) != fingerprint.of(b)


def test_stable_across_processes():
    """Another interpreter with another hash seed computes the same fingerprint."""
    code = (
        "from synchronizer import fingerprint\n"
        "from synchronizer.model import Entity\n"
        "print(fingerprint.of(Entity('t', 'k', state='s', properties={'b': 1, 'a': [1, 2]})))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    local = fingerprint.of(Entity("t", "k", state="s", properties={"a": [1, 2], "b": 1}))
    assert int(out.stdout.strip()) == local


def test_fingerprint_is_never_zero():
    """Zero is reserved for deletes, so no entity fingerprints to it."""
    assert fingerprint.of(Entity("t", "k")) != 0


def test_non_string_property_keys_are_canonical():
    """Integer property keys (YAML allows them) fingerprint as their string form, any order."""
    a = _entity(properties={1: "x", "b": 2})
    b = _entity(properties={"b": 2, 1: "x"})
    assert fingerprint.of(a) == fingerprint.of(b)
    assert fingerprint.canonical_bytes(a) == fingerprint.canonical_bytes(b)
    assert fingerprint.of(a) != fingerprint.of(_entity(properties={1: "y", "b": 2}))


@pytest.mark.parametrize("count", [0, 1, 3])
def test_relations_are_part_of_the_bytes_whatever_their_number(count):
    """No, one or several relations: each one's fields move the fingerprint."""
    rels = tuple(Relation("attached", "cinder.volume", f"v{i}") for i in range(count))
    base = fingerprint.of(_entity(relations=rels))
    if count:
        changed = (*rels[:-1], Relation("attached", "cinder.volume", "other"))
        assert fingerprint.of(_entity(relations=changed)) != base
    assert fingerprint.of(_entity(relations=(*rels, Relation("port", "t", "k")))) != base
