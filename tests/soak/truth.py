"""What the fake cloud really held, and when: the truth a soak run is checked against.

The fake cloud's kinds map onto entity types (``servers`` → ``nova.instance``,
zones are the distinct zones of the hypervisors); :func:`live_keys` reads the
current keys of every type.  :class:`Truth` keeps each entity's lifetimes
from successive readings, conservatively: an entity counts as alive from
*after* the operation that created it until *before* the one that removed
it, so a delete received while the entity was alive is a false delete
whatever the timing noise::

    truth = Truth()
    before = time.time(); cloud.delete("servers", key); after = time.time()
    truth.observe(live_keys(cloud), before, after)
    truth.alive_at(("nova.instance", key), after)    # False

Every update the scenario makes stamps a revision number into a property the
collectors and notifications carry (:func:`revision` reads it back), so a
state older than one already delivered is recognisable in the stream.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from synchronizer_fakecloud.server import FakeCloud

Key = tuple[str, str]

#: Fake cloud kind → entity type.
KIND_TYPES = {
    "servers": "nova.instance",
    "hypervisors": "nova.host",
    "volumes": "cinder.volume",
    "networks": "neutron.network",
    "ports": "neutron.port",
    "nodes": "ironic.node",
    "stacks": "heat.stack",
    "nagios_services": "nagios.service",
}
ZONE = "nova.zone"
TYPES = (*KIND_TYPES.values(), ZONE)


def entity_key(kind: str, key: str) -> str:
    """The entity key of a fake cloud record (Nagios joins host and service with /)."""
    return key.replace(";", "/", 1) if kind == "nagios_services" else key


def live_keys(cloud: FakeCloud) -> dict[str, set[str]]:
    """The keys of every entity type the cloud holds now."""
    with cloud.state.lock:
        out = {
            etype: {entity_key(kind, k) for k in cloud.keys(kind)}
            for kind, etype in KIND_TYPES.items()
        }
        out[ZONE] = {rec.meta["zone"] for rec in cloud.state.table("hypervisors").records()}
    return out


def _rev_text(value: Any, marker: str) -> int | None:
    if isinstance(value, str) and marker in value:
        tail = value.rsplit(marker, 1)[1]
        return int(tail) if tail.isdigit() else None
    return None


def revision(etype: str, properties: Mapping[str, Any]) -> int | None:
    """The scenario's revision number carried by an entity's properties (None: none yet)."""
    if etype == "nova.instance":
        meta = properties.get("metadata") or {}
        value = meta.get("soak_rev") if isinstance(meta, Mapping) else None
        return int(value) if isinstance(value, str) and value.isdigit() else None
    if etype == "cinder.volume":
        return _rev_text(properties.get("name"), "~r")
    if etype == "nova.host":
        return _rev_text(properties.get("disabled_reason"), "rev ")
    if etype == "nagios.service":
        value = properties.get("current_attempt")
        return value if isinstance(value, int) and value > 1 else None
    if etype in ("neutron.network", "neutron.port", "ironic.node", "heat.stack"):
        return _rev_text(properties.get("description"), "rev ")
    return None


class Truth:
    """Lifetimes of every entity seen in the cloud, from successive readings.

    Threading: ``observe`` from the one thread that changes the cloud;
    ``alive_at`` and ``lives`` from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lives: dict[Key, list[list[float | None]]] = {}
        self._current: dict[str, set[str]] = {}

    def observe(self, live: Mapping[str, set[str]], before: float, after: float) -> None:
        """Record what appeared (alive from ``after``) and vanished (dead from ``before``)."""
        with self._lock:
            for etype, keys in live.items():
                known = self._current.get(etype, set())
                for key in keys - known:
                    self._lives.setdefault((etype, key), []).append([after, None])
                for key in known - keys:
                    self._lives[(etype, key)][-1][1] = before
                self._current[etype] = set(keys)

    def alive_at(self, key: Key, when: float) -> bool:
        """Whether the entity surely existed at ``when``."""
        with self._lock:
            for born, died in self._lives.get(key, ()):
                if born is not None and born <= when and (died is None or when < died):
                    return True
        return False

    def lives(self, key: Key) -> list[tuple[float | None, float | None]]:
        """Each lifetime of an entity, ``(born, died)`` (None: still alive)."""
        with self._lock:
            return [(born, died) for born, died in self._lives.get(key, ())]

    def current(self) -> dict[str, set[str]]:
        """The keys of the latest reading, by type."""
        with self._lock:
            return {etype: set(keys) for etype, keys in self._current.items()}

    def deaths(self) -> int:
        """How many lifetimes ended so far."""
        with self._lock:
            return sum(1 for lives in self._lives.values() for _, died in lives if died)
