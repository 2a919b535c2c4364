"""The ``ironic.node`` collector: every bare metal node, every page.

Enable it as ``plugins = ironic.node``.  Ironic wants a **system-scoped**
token: to a project-scoped one (even an admin's) it answers 200 with only
the nodes that project owns or leases, a listing that can never be the
whole truth.  So the collector reads its credentials from a group of its
own, with ``system_scope = all`` (a user with the ``admin`` or ``reader``
role on the system), and refuses to list with any other scope::

    [ironic.node]
    period = 60
    page_size = 1000
    credentials = ironic_credentials

    [ironic_credentials]
    auth_type = password
    auth_url = https://keystone.example.org:5000/v3
    username = synchronizer
    password = SECRET
    user_domain_id = default
    system_scope = all
    region_name = RegionOne
    interface = internal
"""

from __future__ import annotations

from typing import Any, ClassVar

from synchronizer.errors import PermanentError
from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
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

    The token must be system-scoped (:meth:`check_access`): any other scope
    raises :class:`PermanentError` naming the scope before a request is
    made.  Requests carry ``X-OpenStack-Ironic-API-Version: 1.65`` (keystoneauth
    sets it from the adapter's microversion).  Every page is followed
    (``limit``/``marker`` through ``next``); any failing page raises.  A
    record that does not convert keeps its node's last good state (``skip``);
    one without a usable ``uuid`` makes the listing incomplete.  Threading: one
    worker thread uses an instance.
    """

    name: ClassVar[str] = "ironic.node"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.NODE,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    service_type: ClassVar[str] = "baremetal"
    path: ClassVar[str] = "/v1/nodes/detail"
    collection: ClassVar[str] = "nodes"
    record_name: ClassVar[str] = "Ironic node"
    key_field: ClassVar[str] = "uuid"
    microversion: ClassVar[str | None] = API_VERSION
    unsupported: ClassVar[str] = (
        f"Ironic does not support API version {API_VERSION} (Ussuri or later needed)"
    )

    def check_access(self) -> None:
        """Raise PermanentError unless this plugin's token is system-scoped.

        Ironic filters a project-scoped token's listing to that project's
        nodes and still answers 200: such a listing is never complete, and
        taking it as complete would delete every other node.
        """
        sess = self.keystone_session()
        access = sess.auth.get_access(sess)
        if access.system_scoped:
            return
        scope = "project" if access.project_scoped else "domain" if access.domain_scoped else "un"
        raise PermanentError(
            f"Ironic lists to a {scope}-scoped token only the nodes its project owns or "
            f"leases, so [{self.group}] needs a system-scoped token: set [{self.group}] "
            f"credentials to a group with system_scope = all (role admin or reader on the "
            f"system); now [{self.credentials_group}] gives a {scope}-scoped one"
        )

    def build(self, record: Any) -> Entity:
        return shapes.node(self, record)
