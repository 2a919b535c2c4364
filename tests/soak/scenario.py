"""A seeded random scenario of creates, updates and deletes across every kind.

One :meth:`Scenario.step` changes one record of the fake cloud (or a few,
when a delete cascades), records the new truth, and returns the Nova event
a real cloud would send when the record is a server.  Every update stamps a
growing revision number (see :func:`tests.soak.truth.revision`); counts stay
within half and one and a half times the initial size of each kind, and
deletes are those a real cloud allows (no network with ports, no host with
servers, no attached volume)::

    scenario = Scenario(cloud, truth, random.Random(seed))
    scenario.populate(quick=True)
    event = scenario.step()            # None, or a NovaEvent to publish
"""

from __future__ import annotations

import collections
import dataclasses
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from synchronizer_fakecloud.server import FakeCloud
from tests.soak.truth import Truth, live_keys

SIZES = {
    "quick": {
        "hosts": 4,
        "zones": 2,
        "servers": 30,
        "volumes": 10,
        "networks": 4,
        "ports": 12,
        "nodes": 5,
        "stacks": 5,
        "nagios_services": 2,
    },
    "long": {
        "hosts": 8,
        "zones": 2,
        "servers": 120,
        "volumes": 30,
        "networks": 8,
        "ports": 40,
        "nodes": 12,
        "stacks": 12,
        "nagios_services": 3,
    },
}
#: How often each kind is picked.
WEIGHTS = {
    "servers": 6,
    "hypervisors": 1,
    "volumes": 2,
    "networks": 1,
    "ports": 2,
    "nodes": 2,
    "stacks": 2,
    "nagios_services": 2,
}
ACTIONS = (("update", 6), ("create", 2), ("delete", 2))
_SERVER_STATUSES = ("ACTIVE", "SHUTOFF", "PAUSED")
_NAGIOS_NEXT = {0: "WARNING", 2: "WARNING", 4: "CRITICAL", 16: "OK", 8: "OK", 1: "OK"}


@dataclasses.dataclass(frozen=True)
class NovaEvent:
    """What Nova would notify after a server operation."""

    action: str
    key: str
    doc: dict[str, Any]
    old_status: str | None
    at: float


class Scenario:
    """Seeded changes to the fake cloud, with the truth kept up to date.

    Threading: call from one thread only.
    """

    def __init__(self, cloud: FakeCloud, truth: Truth, rng: random.Random) -> None:
        self.cloud = cloud
        self.truth = truth
        self.rng = rng
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.rev = 10
        self.serial = 0
        self.bounds: dict[str, tuple[int, int]] = {}

    def populate(self, sizes: dict[str, int]) -> dict[str, int]:
        """Fill the cloud; every kind then stays within half and 1.5x of its size."""
        before = time.time()
        made = self.cloud.populate(**sizes, seed=self.rng.randrange(1 << 30))
        self.truth.observe(live_keys(self.cloud), before, time.time())
        for kind, n in made.items():
            self.bounds[kind] = (max(1, n // 2), max(3, n * 3 // 2))
        return made

    # -- one step --------------------------------------------------------

    def step(self) -> NovaEvent | None:
        """Change the cloud once; return the Nova event for a server change."""
        kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        action = self.rng.choices([a for a, _ in ACTIONS], weights=[w for _, w in ACTIONS])[0]
        live = self.cloud.keys(kind)
        low, high = self.bounds.get(kind, (1, 10))
        if (action == "delete" and len(live) <= low) or (action == "create" and len(live) >= high):
            action = "update"
        before = time.time()
        key, old_status = self._act(kind, action, live)
        after = time.time()
        if key is None:
            return None
        self.counts[(kind, action)] += 1
        self.truth.observe(live_keys(self.cloud), before, after)
        if kind != "servers":
            return None
        record = self.cloud.record("servers", key)
        assert record is not None
        # Stamped as nova-compute would, on the true clock: the record's time is the
        # API's, which a clock_skew episode sets 60 s behind (the daemon's delta
        # listings must cope with that; nova-compute and the daemon share NTP).
        at = record.updated if not self.cloud.state.clock.offset else after
        return NovaEvent(action, key, record.doc, old_status, at)

    def _act(self, kind: str, action: str, live: list[str]) -> tuple[str | None, str | None]:
        if action == "create":
            return self.cloud.create(kind, **self._new(kind)), None
        candidates = self._deletable(kind, live) if action == "delete" else live
        if not candidates:
            return None, None
        key = self.rng.choice(sorted(candidates))
        if action == "delete":
            old = self.cloud.get(kind, key) or {}
            self.cloud.delete(kind, key)
            return key, old.get("status")
        old = self.cloud.get(kind, key) or {}
        self.rev += 1
        self.cloud.update(kind, key, **_UPDATES[kind](self, old))
        return key, old.get("status")

    def _deletable(self, kind: str, live: list[str]) -> list[str]:
        if kind == "hypervisors":
            busy = {self._doc("servers", k).get("OS-EXT-SRV-ATTR:host") for k in self._servers()}
            return [k for k in live if k not in busy]
        if kind == "networks":
            used = {self._doc("ports", k).get("network_id") for k in self.cloud.keys("ports")}
            return [k for k in live if k not in used]
        if kind == "volumes":
            return [k for k in live if not self._doc("volumes", k).get("attachments")]
        return live

    def _servers(self) -> list[str]:
        return self.cloud.keys("servers")

    def _doc(self, kind: str, key: str) -> dict[str, Any]:
        return self.cloud.get(kind, key) or {}

    # -- new records -----------------------------------------------------

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _new(self, kind: str) -> dict[str, Any]:
        self.serial += 1
        n = self.serial
        hosts = sorted(self.cloud.keys("hypervisors"))
        if kind == "servers":
            return {
                "id": self._uuid(),
                "name": f"soak-vm-{n}",
                "host": self.rng.choice(hosts),
                "flavor": self.rng.choice(("m1.tiny", "m1.small", "m1.medium")),
            }
        if kind == "hypervisors":
            return {"host": f"soak-host-{n:03d}", "zone": self.rng.choice(("zone-0", "zone-1"))}
        if kind == "nagios_services":
            return {"host_name": self.rng.choice(hosts), "description": f"soak-check-{n}"}
        if kind == "ports":
            nets = sorted(self.cloud.keys("networks"))
            fields = {"id": self._uuid(), "name": f"soak-port-{n}"}
            return {**fields, "network_id": self.rng.choice(nets)} if nets else fields
        if kind == "nodes":
            return {"uuid": self._uuid(), "name": f"soak-node-{n}"}
        return {"id": self._uuid(), "name": f"soak-{kind}-{n}"}


def _server(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    status = doc.get("status")
    others = [x for x in _SERVER_STATUSES if x != status]
    fields: dict[str, Any] = {"metadata": {"soak_rev": str(s.rev)}}
    if s.rng.random() < 0.7:
        fields["status"] = s.rng.choice(others)
    return fields


def _host(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"disabled_reason": f"rev {s.rev}"}
    if s.rng.random() < 0.5:
        fields["state"] = "down" if doc.get("state") == "up" else "up"
    if s.rng.random() < 0.2:
        fields["zone"] = s.rng.choice(("zone-0", "zone-1"))
    return fields


def _volume(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    base = str(doc.get("name") or "vol").split("~r", 1)[0]
    return {"name": f"{base}~r{s.rev}"}


def _described(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    return {"description": f"rev {s.rev}"}


def _node(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    power = "power off" if doc.get("power_state") == "power on" else "power on"
    return {"description": f"rev {s.rev}", "power_state": power}


def _stack(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    status = s.rng.choice(("UPDATE_COMPLETE", "UPDATE_FAILED", "CHECK_COMPLETE"))
    return {"description": f"rev {s.rev}", "status": status}


def _nagios(s: Scenario, doc: dict[str, Any]) -> dict[str, Any]:
    return {"status": _NAGIOS_NEXT.get(doc.get("status", 2), "OK"), "current_attempt": s.rev}


_UPDATES: dict[str, Callable[[Scenario, dict[str, Any]], dict[str, Any]]] = {
    "servers": _server,
    "hypervisors": _host,
    "volumes": _volume,
    "networks": _described,
    "ports": _described,
    "nodes": _node,
    "stacks": _stack,
    "nagios_services": _nagios,
}
