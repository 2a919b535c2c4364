"""The ``cinder.volume`` collector: every volume of every project, every page.

Enable it as ``plugins = cinder.volume``; it reads ``[service_credentials]``
(an admin: ``all_tenants`` needs it) and its own group::

    [cinder.volume]
    period = 60
    page_size = 1000
"""

from __future__ import annotations

from typing import Any, ClassVar

from synchronizer.errors import PermanentError
from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.cinder import shapes
from synchronizer_plugins.openstack import PagedCollector

# Pinned, not negotiated: 3.63 (Wallaby) is the first microversion whose volume
# view carries ``volume_type_id``, the only volume type field notifications
# also carry.  A Cinder older than that answers 406 and the plugin is disabled
# with a message saying so, rather than silently emitting a shape that never
# matches the notifications'.
MICROVERSION = "3.63"

# Cinder ignores all_tenants=1 for a user without the admin role and answers
# 200 with its own project's volumes (checked up front: all_projects_role).
# Clouds on the older policy defaults also hide a volume's project from such
# a user (volume_extension:volume_tenant_attribute): a record without the
# attribute says the same, whatever the token's roles.
TENANT_ATTR = "os-vol-tenant-attr:tenant_id"
NOT_ADMIN = (
    f"Cinder hides {TENANT_ATTR} from this user, so all_tenants=1 is not honoured and "
    "the listing holds only its own project's volumes: give the user the admin role "
    "(or Cinder's volume_extension:volume_tenant_attribute and all-tenants policies)"
)


class VolumeCollector(PagedCollector):
    """Polls ``GET /v3/volumes/detail?all_tenants=1`` and yields ``cinder.volume`` entities.

    Normalised shape (see :mod:`synchronizer_plugins.cinder.shapes` for the field table):
    key = volume ``id``; state = ``status`` as Cinder says it (``available``,
    ``in-use``, ``error``...); project = ``os-vol-tenant-attr:tenant_id``; no
    parent; relations = ``(attached, nova.instance, server_id)`` per live
    attachment; properties = ``name``, ``size`` (int GiB),
    ``availability_zone``, ``host``, ``volume_type_id``, ``snapshot_id``,
    ``user_id``, ``created_at`` (UTC, second precision).  Nothing volatile.

    Every page is followed (``limit``/``marker`` through ``volumes_links``);
    any failing page raises, so the listing counts as incomplete.  A token
    without the ``admin`` role (``all_projects_role``), or a record without
    ``os-vol-tenant-attr:tenant_id`` (a non-admin's view, for which
    Cinder ignores ``all_tenants``) raises :class:`PermanentError`.  A record
    that does not convert keeps its volume's last good state (``skip``); one
    without a usable ``id`` makes the listing incomplete.  Threading: one worker
    thread uses an instance.
    """

    name: ClassVar[str] = "cinder.volume"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.VOLUME,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    service_type: ClassVar[str] = "block-storage"
    service_name: ClassVar[str] = "Cinder"
    all_projects_role: ClassVar[str | None] = "admin"
    path: ClassVar[str] = "/volumes/detail"
    collection: ClassVar[str] = "volumes"
    record_name: ClassVar[str] = "Cinder volume"
    microversion: ClassVar[str | None] = MICROVERSION
    unsupported: ClassVar[str] = (
        f"Cinder does not support microversion {MICROVERSION} (Wallaby or later needed)"
    )

    def query(self) -> dict[str, Any]:
        return {"all_tenants": 1, **super().query()}

    def build(self, record: Any) -> Entity:
        if isinstance(record, dict) and TENANT_ATTR not in record:
            raise PermanentError(NOT_ADMIN)
        return shapes.from_api(self, record)
