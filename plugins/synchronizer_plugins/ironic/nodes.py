"""The ``ironic.node`` collector: every bare metal node, every page.

Enable it as ``plugins = ironic.node``; it reads ``[service_credentials]``
(a user that may list every node, e.g. an admin) and its own group::

    [ironic.node]
    period = 60
    page_size = 1000
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib import parse

from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg

from synchronizer.errors import PermanentError
from synchronizer.model import Entity
from synchronizer_plugins.ironic import shapes
from synchronizer_plugins.openstack import OpenStackCollector

LOG = logging.getLogger(__name__)

# Pinned, not negotiated: without a version header Ironic answers in API 1.1,
# which lacks most of the shape.  1.65 (Ussuri) is the first version with
# every field the shape needs (lessee 1.65, retired 1.61, owner 1.50,
# protected 1.48, conductor_group 1.46, fault 1.42, traits 1.37), and the
# versioned notifications carry all of them.  An older Ironic answers 406 and
# the plugin is disabled with a message saying so.
API_VERSION = "1.65"


class NodeCollector(OpenStackCollector):
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

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            cfg.IntOpt(
                "page_size",
                default=1000,
                min=1,
                help="Nodes asked for per page (the limit query parameter).",
            ),
        ]

    def list_all(self) -> Iterator[Entity]:
        query = parse.urlencode({"limit": self.options.page_size})
        api = self.adapter(default_microversion=API_VERSION)
        try:
            for record in self.paginate(api, f"/v1/nodes/detail?{query}", "nodes"):
                entity = self._convert(record)
                if entity is not None:
                    yield entity
        except ks_exc.NotAcceptable as exc:
            raise PermanentError(
                f"Ironic does not support API version {API_VERSION} (Ussuri or later needed)"
            ) from exc

    def _convert(self, record: Any) -> Entity | None:
        try:
            return shapes.node(self, record)
        except ValueError as exc:
            LOG.warning("Skipping a malformed Ironic node record: %s", exc)
            return None
