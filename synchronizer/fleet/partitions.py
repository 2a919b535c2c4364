"""Partitions: the plugins that produce one set of entity types, owned together.

The push and the poll of an entity must stay with one member (the
ledger's dedup and ordering rules hold within one dispatcher), so plugins
are grouped by the namespace of their entity types: every ``nova.*``
collector and the Nova notification plugin form the partition ``nova``.
A pure function of the plugin classes: every member computes the same
partitions from the same configuration::

    >>> from synchronizer.plugin_base import Plugin
    >>> class A(Plugin): entity_types = ("nova.instance",)
    >>> class B(Plugin): entity_types = ("nova.host",)
    >>> class C(Plugin): entity_types = ("cinder.volume",)
    >>> [(p.name, p.plugins) for p in group({"a": A, "b": B, "c": C})]
    [('cinder', ('c',)), ('nova', ('a', 'b'))]
    >>> [p.name for p in group({"east/a": A, "west/a": A, "b": B})]
    ['east.nova', 'nova', 'west.nova']
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping

from synchronizer import clouds

__all__ = ["Partition", "assign", "cloud_of", "group", "namespace"]


@dataclasses.dataclass(frozen=True, slots=True)
class Partition:
    """A partition's name, its plugins (names, sorted) and the entity types they produce."""

    name: str
    plugins: tuple[str, ...]
    types: frozenset[str]


def namespace(plugin: str, entity_types: tuple[str, ...]) -> str:
    """The namespace before the dot of a plugin's types (its name's, when it has none).

    A plugin whose types span several namespaces goes with the first of them
    in sorted order (the static topology plugin: one partition of its own
    types).
    """
    names = sorted({t.split(".", 1)[0] for t in entity_types})
    return names[0] if names else plugin.split(".", 1)[0]


def cloud_of(partition: str) -> str | None:
    """The cloud of a partition (``east`` of ``east.nova``), None for one of no cloud."""
    cloud, dot, _ = partition.partition(".")
    return cloud if dot else None


def group(classes: Mapping[str, type]) -> list[Partition]:
    """The partitions of plugin classes (name → class), sorted by name.

    A cloud's plugins (``east/nova.instance``, see :mod:`synchronizer.clouds`)
    are partitioned per cloud: ``east.nova``, ``west.nova``.
    """
    members: dict[str, list[str]] = {}
    types: dict[str, set[str]] = {}
    for name, cls in classes.items():
        entity_types = tuple(getattr(cls, "entity_types", ()))
        cloud, base = clouds.split(name)
        ns = namespace(base, entity_types)
        ns = ns if cloud is None else f"{cloud}.{ns}"
        members.setdefault(ns, []).append(name)
        types.setdefault(ns, set()).update(entity_types)
    return [
        Partition(ns, tuple(sorted(members[ns])), frozenset(types[ns])) for ns in sorted(members)
    ]


def assign(partitions: list[str], members: list[str]) -> dict[str, str]:
    """Each partition's owner among ``members``: balanced, deterministic, sticky.

    Rendezvous hashing within capacities that add up to the partitions:
    every member computes the same map from the same membership, no member
    owns more than one partition above another, and a member joining or
    leaving moves few partitions (mostly only those that must move).
    """
    if not members:
        return {}
    # Capacities that sum to the partitions: floor(P/M) each, one more for
    # the first P mod M members in an order of their own (not their names').
    base, extra = divmod(len(partitions), len(members))
    by_hash = sorted(members, key=lambda m: _weight("", m))
    room = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_hash)}
    owners = {}
    for p in sorted(partitions):
        ranked = sorted(members, key=lambda m, p=p: _weight(p, m), reverse=True)
        owner = next(m for m in ranked if room[m] > 0)
        room[owner] -= 1
        owners[p] = owner
    return owners


def _weight(partition: str, member: str) -> int:
    digest = hashlib.blake2b(f"{partition}\0{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
