"""Bulk data for the fake cloud: populate it, then change it, reproducibly.

``populate`` builds a consistent topology fast (100,000 servers over 1,000
hosts in about a second): hosts first, then networks, then servers spread
round-robin over hosts and projects, volumes attached to servers, one port
per server, bare metal nodes, stacks and Nagios services per host::

    populate(state, servers=100_000, hosts=1_000, volumes=1_000, seed=1)
    changed = change(state, "servers", fraction=0.01, rng=random.Random(2))

Everything derives from ``seed``: the same arguments give the same ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from synchronizer_fakecloud.keystone import stable_id
from synchronizer_fakecloud.state import CloudState, Record

NAGIOS_CHECKS = ("ssh", "nova-compute", "libvirtd", "ovs-vswitchd", "disk", "load", "memory", "ntp")
_STATUS_MIX = ("ACTIVE",) * 17 + ("SHUTOFF", "ERROR", "PAUSED")
_FLAVORS = ("m1.tiny", "m1.small", "m1.medium", "m1.large")
POPULATED = frozenset(
    ("servers", "hypervisors", "volumes", "networks", "ports", "nodes", "stacks", "nagios_services")
)


def seeded_rng(seed: int) -> random.Random:
    # Reproducible test data, not security: a seeded PRNG is what we want.
    return random.Random(seed)  # noqa: S311


def _uuid(rng: random.Random) -> str:
    """A version 4 UUID from ``rng`` (formatted by hand: 5x faster)."""
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def project_ids(state: CloudState, count: int) -> list[str]:
    """The admin project and ``count - 1`` more project ids."""
    return [state.context["project_id"]] + [
        stable_id("project", f"project-{i}") for i in range(1, max(count, 1))
    ]


def populate(
    state: CloudState,
    *,
    servers: int = 0,
    hosts: int = 0,
    projects: int = 10,
    zones: int = 1,
    volumes: int = 0,
    networks: int = 0,
    ports: int = 0,
    nodes: int = 0,
    stacks: int = 0,
    nagios_services: int = 0,
    seed: int = 0,
) -> dict[str, int]:
    """Add records of every kind; return how many of each were created.

    ``nagios_services`` is per host (at most ``len(NAGIOS_CHECKS)``);
    ``volumes`` are attached to the first servers, ``ports`` bind one to
    each of the first servers. Servers need at least one host; they are
    spread over every host the cloud has. Populating again adds new records.
    """
    with state.lock:
        # Seeded by the arguments and what exists of the kinds populate makes,
        # so that populating twice adds new records instead of colliding with
        # the first ones (and the cloud's own flavors change no id).
        sizes = ",".join(str(len(state.table(kind))) for kind in state.kinds if kind in POPULATED)
        rng = random.Random(f"{seed}:{sizes}")  # noqa: S311 - reproducible test data
        owners = project_ids(state, projects)
        host_names = _hosts(state, hosts, zones)
        if servers and not host_names:
            raise ValueError("servers need hosts: pass hosts >= 1")
        counts = {"hypervisors": hosts}
        counts["networks"] = state.create_many("networks", _owned(rng, networks, owners, "net"))
        counts.update(_compute(state, rng, (servers, volumes, ports), host_names, owners))
        counts["nodes"] = state.create_many("nodes", _nodes(rng, nodes))
        counts["stacks"] = state.create_many("stacks", _owned(rng, stacks, owners, "stack"))
        counts["nagios_services"] = state.create_many(
            "nagios_services", _checks(state, host_names, nagios_services)
        )
    return counts


def _owned(
    rng: random.Random, count: int, owners: list[str], prefix: str
) -> Iterator[dict[str, Any]]:
    """Records spread round-robin over projects."""
    for i in range(count):
        yield {"id": _uuid(rng), "name": f"{prefix}-{i:05d}", "project_id": owners[i % len(owners)]}


def _compute(
    state: CloudState,
    rng: random.Random,
    sizes: tuple[int, int, int],
    hosts: list[str],
    owners: list[str],
) -> dict[str, int]:
    """Servers, the volumes attached to them and their ports."""
    servers, volumes, ports = sizes
    volume_ids = [_uuid(rng) for _ in range(min(volumes, servers))]
    server_ids = [_uuid(rng) for _ in range(servers)]
    port_fields = (
        {
            "id": _uuid(rng),
            "server": server_ids[i] if i < servers else None,
            "project_id": owners[i % len(owners)],
        }
        for i in range(ports)
    )
    return {
        "servers": state.create_many(
            "servers", _servers(rng, server_ids, hosts, owners, volume_ids)
        ),
        "volumes": state.create_many(
            "volumes", _volumes(rng, volumes, server_ids, volume_ids, owners)
        ),
        "ports": state.create_many("ports", port_fields),
    }


def _checks(state: CloudState, hosts: list[str], per_host: int) -> Iterator[dict[str, Any]]:
    """Nagios services per host, skipping those that exist."""
    existing = state.table("nagios_services")
    for host in hosts:
        for check in NAGIOS_CHECKS[:per_host]:
            if f"{host};{check}" not in existing:
                yield {"host_name": host, "description": check}


def _hosts(state: CloudState, count: int, zones: int) -> list[str]:
    """Create ``count`` hosts; return every host name the cloud now has."""
    for i in range(count):
        zone = "nova" if zones <= 1 else f"zone-{i % zones}"
        state.create("hypervisors", {"zone": zone})
    return [rec.key for rec in state.table("hypervisors").records()]


def _servers(
    rng: random.Random, ids: list[str], hosts: list[str], owners: list[str], volume_ids: list[str]
) -> Iterator[dict[str, Any]]:
    statuses = rng.choices(_STATUS_MIX, k=len(ids))
    flavors = rng.choices(_FLAVORS, k=len(ids))
    for i, server_id in enumerate(ids):
        yield {
            "id": server_id,
            "name": f"vm-{i:06d}",
            "host": hosts[i % len(hosts)],
            "project_id": owners[i % len(owners)],
            "status": statuses[i],
            "flavor": flavors[i],
            "volumes": [volume_ids[i]] if i < len(volume_ids) else [],
        }


def _volumes(
    rng: random.Random, count: int, server_ids: list[str], attached: list[str], owners: list[str]
) -> Iterator[dict[str, Any]]:
    for i in range(count):
        if i < len(attached):
            yield {
                "id": attached[i],
                "server": server_ids[i],
                "size": rng.choice((10, 20, 50)),
                "project_id": owners[i % len(owners)],
                "name": f"vol-{i:06d}",
            }
        else:
            yield {"id": _uuid(rng), "project_id": owners[i % len(owners)], "name": f"vol-{i:06d}"}


def _nodes(rng: random.Random, count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        active = rng.random() < 0.5
        yield {
            "uuid": _uuid(rng),
            "name": f"node-{i:04d}",
            "provision_state": "active" if active else "available",
            "power_state": "power on" if active else "power off",
            "conductor_group": f"group-{i % 2}",
        }


def _next_status(doc: dict[str, Any]) -> dict[str, Any]:
    return {"status": "SHUTOFF" if doc["status"] == "ACTIVE" else "ACTIVE"}


def _generation(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def mutate(doc: dict[str, Any]) -> dict[str, Any]:
        value = doc.get(key)
        current = value.get("generation", "0") if isinstance(value, dict) else "0"
        return {key: {"generation": str(int(current) + 1)}}

    return mutate


_NAGIOS_CYCLE = {2: "WARNING", 4: "CRITICAL", 16: "OK", 8: "OK", 1: "OK"}
MUTATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "servers": _next_status,
    "hypervisors": lambda doc: {"state": "down" if doc["state"] == "up" else "up"},
    "volumes": _generation("metadata"),
    "networks": lambda doc: {"description": f"rev {doc['revision_number']}"},
    "ports": lambda doc: {"description": f"rev {doc['revision_number']}"},
    "nodes": lambda doc: {
        "power_state": "power off" if doc["power_state"] == "power on" else "power on"
    },
    "stacks": lambda doc: {"status": "UPDATE_COMPLETE"},
    "nagios_services": lambda doc: {"status": _NAGIOS_CYCLE[doc["status"]]},
}


def change(
    state: CloudState,
    kind: str = "servers",
    *,
    fraction: float | None = None,
    count: int | None = None,
    action: str = "update",
    rng: random.Random | None = None,
) -> list[str]:
    """Update, delete or create a random subset of a kind; return the keys.

    ``fraction`` (of the live records) or ``count`` says how many; for
    ``create``, ``count`` new records are made (servers go to random hosts).
    Updates are the kind's natural flip (server ACTIVE <-> SHUTOFF, host
    up <-> down, Nagios OK -> WARNING -> CRITICAL -> OK, ...).
    """
    rng = rng or seeded_rng(0)
    if action == "create":
        return _create(state, kind, count or 0, rng)
    with state.lock:
        live = [rec for rec in state.table(kind).records() if rec.deleted is None]
        size = count if count is not None else round(len(live) * (fraction or 0.0))
        chosen = rng.sample(live, min(size, len(live)))
        for rec in chosen:
            _act(state, rec, action)
    return [rec.key for rec in chosen]


def _act(state: CloudState, rec: Record, action: str) -> None:
    if action == "update":
        state.update(rec.kind, rec.key, MUTATIONS[rec.kind](rec.doc))
    elif action == "delete":
        state.delete(rec.kind, rec.key)
    else:
        raise ValueError(f"unknown action {action!r}: expected update, delete or create")


def _fresh_id(state: CloudState, kind: str, rng: random.Random) -> str:
    """A random id not yet used by the kind (the rng may replay populate's)."""
    key = _uuid(rng)
    while key in state.table(kind):
        key = _uuid(rng)
    return key


def _create(state: CloudState, kind: str, count: int, rng: random.Random) -> list[str]:
    with state.lock:
        hosts = [rec.key for rec in state.table("hypervisors").records()]
        keys = []
        for _ in range(count):
            fields: dict[str, Any] = {}
            if kind == "servers" and hosts:
                fields = {"id": _fresh_id(state, kind, rng), "host": rng.choice(hosts)}
            elif kind == "nagios_services":
                fields = {
                    "host_name": rng.choice(hosts or ["host"]),
                    "description": f"check-{_uuid(rng)[:8]}",
                }
            keys.append(state.create(kind, fields).key)
    return keys
