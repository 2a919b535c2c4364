"""The ``cinder.volume`` collector: every volume of every project, every page.

Enable it as ``plugins = cinder.volume``; it reads ``[service_credentials]``
(an admin: ``all_tenants`` needs it) and its own group::

    [cinder.volume]
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
from synchronizer_plugins.cinder import shapes
from synchronizer_plugins.openstack import OpenStackCollector

LOG = logging.getLogger(__name__)

# Pinned, not negotiated: 3.63 (Wallaby) is the first microversion whose volume
# view carries ``volume_type_id``, the only volume type field notifications
# also carry.  A Cinder older than that answers 406 and the plugin is disabled
# with a message saying so, rather than silently emitting a shape that never
# matches the notifications'.
MICROVERSION = "3.63"


class VolumeCollector(OpenStackCollector):
    """Polls ``GET /v3/volumes/detail?all_tenants=1`` and yields ``cinder.volume`` entities.

    Normalised shape (see :mod:`synchronizer_plugins.cinder.shapes` for the field table):
    key = volume ``id``; state = ``status`` as Cinder says it (``available``,
    ``in-use``, ``error``...); project = ``os-vol-tenant-attr:tenant_id``; no
    parent; relations = ``(attached, nova.instance, server_id)`` per live
    attachment; properties = ``name``, ``size`` (int GiB),
    ``availability_zone``, ``host``, ``volume_type_id``, ``snapshot_id``,
    ``user_id``, ``created_at`` (UTC, second precision).  Nothing volatile.

    Every page is followed (``limit``/``marker`` through ``volumes_links``);
    any failing page raises, so the listing counts as incomplete.  A record
    without a usable ``id`` is logged and skipped.  Threading: one worker
    thread uses an instance.
    """

    name: ClassVar[str] = "cinder.volume"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.VOLUME,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    service_type: ClassVar[str] = "block-storage"

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            cfg.IntOpt(
                "page_size",
                default=1000,
                min=1,
                help="Volumes asked for per page (the limit query parameter).",
            ),
        ]

    def list_all(self) -> Iterator[Entity]:
        query = parse.urlencode({"all_tenants": 1, "limit": self.options.page_size})
        api = self.adapter(default_microversion=MICROVERSION)
        try:
            for record in self.paginate(api, f"/volumes/detail?{query}", "volumes"):
                entity = self._convert(record)
                if entity is not None:
                    yield entity
        except ks_exc.NotAcceptable as exc:
            raise PermanentError(
                f"Cinder does not support microversion {MICROVERSION} (Wallaby or later needed)"
            ) from exc

    def _convert(self, record: Any) -> Entity | None:
        try:
            return shapes.from_api(self, record)
        except ValueError as exc:
            LOG.warning("Skipping a malformed Cinder volume record: %s", exc)
            return None
