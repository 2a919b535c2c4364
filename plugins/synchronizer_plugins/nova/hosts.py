"""The ``nova.host`` collector: compute services and their hypervisor nodes.

One entity per compute host, keyed by the ``nova-compute`` service's host
name (what a server's ``OS-EXT-SRV-ATTR:host`` says, so an instance's parent
matches).  Two requests a cycle:

* ``GET /os-services?binary=nova-compute``: state (``up``/``down``), status
  (``enabled``/``disabled``), zone (the parent ``nova.zone``; Nova reports it
  for disabled services too, unlike ``os-availability-zone/detail``),
  disabled_reason, forced_down (2.11+, else None);
* ``GET /os-hypervisors/detail`` (paged with ``limit``/``marker`` from 2.33):
  the nodes of each host (one for libvirt, many for ironic), grouped by
  ``service.host``, giving ``nodes``, ``hypervisor_type`` and ``host_ip``.

Shape: state ``up``/``down`` suffixed ``-disabled`` for a disabled service
(:func:`synchronizer_plugins.nova.shapes.host_state`); properties status,
disabled_reason, forced_down, nodes (sorted), hypervisor_type, host_ip.
Hypervisor ids (integers before 2.53, UUIDs after) and the resource fields
2.88 removed (vcpus, memory_mb, running_vms, free_*...) are not part of the
shape: the key does not depend on the id form, and usage counters would make
every poll an update.  A host with hypervisor records but no service record
takes its state from its first node.  From 2.69, a service of a cell
that is down comes back as a stub (``status: UNKNOWN``, no ``state``): such
a host, and one whose records do not convert, is reported with ``skip``, so
it keeps its last good state and is not deleted for want of news, while the
other hosts are listed as usual.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from novaclient import api_versions

from synchronizer.errors import IncompleteListing
from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.collector import NovaCollector

LOG = logging.getLogger(__name__)

__all__ = ["HostCollector", "host_facts", "is_partial"]

PAGED_FROM = api_versions.APIVersion("2.33")


def _forced_down(service: Mapping[str, Any]) -> bool | None:
    value = service.get("forced_down")
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"'forced_down' is a {type(value).__name__}")
    return value


def _node_facts(hypervisors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ordered = sorted(hypervisors, key=lambda h: str(h.get("hypervisor_hostname") or ""))
    first = ordered[0] if ordered else {}
    return {
        "nodes": tuple(n for n in (shapes.text(h, "hypervisor_hostname") for h in ordered) if n),
        "hypervisor_type": shapes.text(first, "hypervisor_type") if first else None,
        "host_ip": shapes.text(first, "host_ip") if first else None,
    }


def is_partial(service: Mapping[str, Any]) -> bool:
    """Whether a service record is a down cell's stub (2.69+: status UNKNOWN, no state)."""
    return service.get("status") == "UNKNOWN" and "state" not in service


def host_facts(
    host: str, service: Mapping[str, Any] | None, hypervisors: Sequence[Mapping[str, Any]]
) -> shapes.Host:
    """The facts of one host from its service record and hypervisor records.

    Raises ValueError when a record is unusable.
    """
    nodes = _node_facts(hypervisors)
    if service is not None:
        return shapes.Host(
            host=host,
            zone=shapes.text(service, "zone"),
            up=service.get("state") == "up",
            enabled=service.get("status") == "enabled",
            disabled_reason=shapes.text(service, "disabled_reason"),
            forced_down=_forced_down(service),
            **nodes,
        )
    first = hypervisors[0]
    return shapes.Host(
        host=host,
        zone=None,
        up=first.get("state") == "up",
        enabled=first.get("status") == "enabled",
        disabled_reason=shapes.text(shapes.mapping(first, "service"), "disabled_reason"),
        **nodes,
    )


class HostCollector(NovaCollector):
    """Polls Nova's compute services and hypervisors into ``nova.host`` entities."""

    name: ClassVar[str] = "nova.host"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.HOST,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.HOST_DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE

    def list_all(self) -> Iterator[Entity]:
        services = self._services()
        nodes = self._hypervisors()
        partial = {h for h, s in services.items() if is_partial(s)}
        for host in sorted(partial):
            self.skip(shapes.HOST, host, "its cell is unreachable (a partial record)")
        for host in sorted((services.keys() | nodes.keys()) - partial):
            try:
                facts = host_facts(host, services.get(host), nodes.get(host, []))
            except ValueError as exc:
                self.skip(shapes.HOST, host, str(exc))
                continue
            yield facts.entity(self)

    def _services(self) -> dict[str, Mapping[str, Any]]:
        body = self.get("/os-services", {"binary": "nova-compute"})
        records = body.get("services")
        if not isinstance(records, list):
            raise IncompleteListing("GET /os-services: no 'services' list in the response")
        services: dict[str, Mapping[str, Any]] = {}
        for record in records:
            if shapes.text(record, "binary") == "nova-compute":  # even if the filter is ignored
                services[str(shapes.text(record, "host", required=True))] = record
        return services

    def _hypervisors(self) -> dict[str, list[Mapping[str, Any]]]:
        params = {"limit": self.options.page_size} if self.api_version >= PAGED_FROM else {}
        by_host: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
        for record in self.pages("/os-hypervisors/detail", "hypervisors", params):
            host = shapes.text(shapes.mapping(record, "service"), "host", required=True)
            by_host[str(host)].append(record)
        return by_host
