"""The ``neutron.network`` and ``neutron.port`` collectors (Networking API v2.0).

Enable them as ``plugins = neutron.network, neutron.port``; they read
``[service_credentials]`` (an admin sees every project's resources) and
their own groups::

    [neutron.port]
    period = 60
    page_size = 1000
"""

from __future__ import annotations

from typing import Any, ClassVar

from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.neutron import shapes
from synchronizer_plugins.openstack import PagedCollector


class _NeutronCollector(PagedCollector):
    """Lists one Neutron collection, every page (``limit``, ``marker``, ``*_links``).

    Neutron has no microversions: ``/v2.0`` plus the extensions the cloud
    runs.  A token without the ``admin`` role (``all_projects_role``) raises
    :class:`PermanentError` before any request (Neutron would answer with
    the user's own projects' resources only).  Any failing page raises (the
    listing is then incomplete); a record that does not convert keeps its entity's last good state
    (``skip``), and one without a usable ``id`` makes the listing incomplete.
    """

    service_type: ClassVar[str] = "network"
    service_name: ClassVar[str] = "Neutron"
    # Neutron shows a user without it its own projects' and the shared
    # resources, with 200: nothing in the answer says it is a part.
    all_projects_role: ClassVar[str | None] = "admin"
    noun: ClassVar[str] = "Records"


class NetworkCollector(_NeutronCollector):
    """Polls ``GET /v2.0/networks`` and yields ``neutron.network`` entities.

    Shape (:mod:`synchronizer_plugins.neutron.shapes`): key ``id``; state ``status``;
    project ``project_id``; no parent; properties ``name``, ``description``,
    ``admin_state_up``, ``shared``, ``mtu``, ``router:external``,
    ``port_security_enabled``, ``subnets``, ``tags``, ``created_at``;
    volatile ``revision_number``, ``updated_at``.
    """

    name: ClassVar[str] = "neutron.network"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.NETWORK,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.NETWORK_DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    collection: ClassVar[str] = "networks"
    path: ClassVar[str] = "/v2.0/networks"
    record_name: ClassVar[str] = "Neutron networks"

    def build(self, record: Any) -> Entity:
        return shapes.network(self, record)


class PortCollector(_NeutronCollector):
    """Polls ``GET /v2.0/ports`` and yields ``neutron.port`` entities.

    Shape (:mod:`synchronizer_plugins.neutron.shapes`): key ``id``; state ``status``;
    project ``project_id`` (``None`` for Neutron's own ports); parent the
    ``neutron.network``; relation ``(attached, nova.instance, device_id)``
    for ``compute:*`` owners; properties ``name``, ``description``,
    ``admin_state_up``, ``mac_address``, ``device_id``, ``device_owner``,
    ``fixed_ips``, ``security_groups``, ``port_security_enabled``, ``tags``,
    ``created_at``; volatile ``revision_number``, ``updated_at``.
    """

    name: ClassVar[str] = "neutron.port"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.PORT,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.PORT_DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    collection: ClassVar[str] = "ports"
    path: ClassVar[str] = "/v2.0/ports"
    record_name: ClassVar[str] = "Neutron ports"

    def build(self, record: Any) -> Entity:
        return shapes.port(self, record)
