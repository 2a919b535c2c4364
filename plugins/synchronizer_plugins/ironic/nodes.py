"""The ``ironic.node`` collector: every bare metal node, every page.

Enable it as ``plugins = ironic.node``; it reads ``[service_credentials]``
(a user that may list every node, e.g. an admin) and its own group::

    [ironic.node]
    period = 60
    page_size = 1000
"""

from __future__ import annotations

from typing import Any, ClassVar

from synchronizer.model import Entity
from synchronizer_plugins.ironic import shapes
from synchronizer_plugins.openstack import PagedCollector

# Pinned, not negotiated: without a version header Ironic answers in API 1.1,
# which lacks most of the shape.  1.65 (Ussuri) is the first version with
# every field the shape needs (lessee 1.65, retired 1.61, owner 1.50,
# protected 1.48, conductor_group 1.46, fault 1.42, traits 1.37), and the
# versioned notifications carry all of them.  An older Ironic answers 406 and
# the plugin is disabled with a message saying so.
API_VERSION = "1.65"


class NodeCollector(PagedCollector):
    """Polls ``GET /v1/nodes/detail`` and yields ``ironic.node`` entities.

    Normalised shape (details in :mod:`synchronizer_plugins.ironic.shapes`): key ``uuid``;
    state ``provision_state``; project ``owner`` else ``lessee``; no parent;
    relation ``(hosts, nova.instance, instance_uuid)``; properties ``name``,
    ``description``, ``driver``, ``power_state``, ``target_power_state``,
    ``target_provision_state``, ``maintenance``, ``maintenance_reason``,
    ``fault``, ``console_enabled``, ``protected(_reason)``,
    ``retired(_reason)``, ``last_error``, ``resource_class``,
    ``conductor_group``, ``owner``, ``lessee``, ``traits``, ``properties``,
    ``created_at``; volatile ``updated_at``, ``provision_updated_at``.

    Requests carry ``X-OpenStack-Ironic-API-Version: 1.65`` (keystoneauth
    sets it from the adapter's microversion).  Every page is followed
    (``limit``/``marker`` through ``next``); any failing page raises.  A
    record without a usable ``uuid`` is logged and skipped.  Threading: one
    worker thread uses an instance.
    """

    name: ClassVar[str] = "ironic.node"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.NODE,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    service_type: ClassVar[str] = "baremetal"
    path: ClassVar[str] = "/v1/nodes/detail"
    collection: ClassVar[str] = "nodes"
    record_name: ClassVar[str] = "Ironic node"
    microversion: ClassVar[str | None] = API_VERSION
    unsupported: ClassVar[str] = (
        f"Ironic does not support API version {API_VERSION} (Ussuri or later needed)"
    )

    def build(self, record: Any) -> Entity:
        return shapes.node(self, record)
