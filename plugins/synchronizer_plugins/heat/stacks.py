"""The ``heat.stack`` collector: every stack of every project, every page.

Enable it as ``plugins = heat.stack``.  Listing every project's stacks
(``global_tenant=True``) needs Heat's ``stacks:global_index`` policy, which
Heat denies to everybody by default: grant it to the synchronizer's user.
Options::

    [heat.stack]
    period = 60
    page_size = 1000
    show_nested = true
"""

from __future__ import annotations

from typing import Any, ClassVar

from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg

from synchronizer.errors import PermanentError
from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.heat import shapes
from synchronizer_plugins.openstack import PagedCollector

POLICY = "stacks:global_index"
POLICY_MISSING = (
    f"Heat refuses this user the all-projects stack listing (HTTP 403): grant it the "
    f'policy {POLICY} (its default is rule:deny_everybody), e.g. "{POLICY}": '
    '"rule:context_is_admin" in Heat\'s policy.yaml'
)


class StackCollector(PagedCollector):
    """Polls ``GET /stacks?global_tenant=True`` and yields ``heat.stack`` entities.

    Normalised shape (field table in :mod:`synchronizer_plugins.heat.shapes`): key stack
    ``id``; state ``stack_status`` (``CREATE_COMPLETE``, ``UPDATE_FAILED``...,
    exactly what notifications call ``state``); project ``project``; no
    parent; properties ``name``, ``description``, ``status_reason``,
    ``tags``, ``created_at``; volatile ``updated_at``.

    Heat has no microversions (API v1).  Nested stacks are listed too
    (``show_nested``, on by default) because Heat sends notifications for
    them: without them a notified nested stack would be an entity no poll
    ever confirms.  Every page is followed (``limit``/``marker`` through
    ``links``); any failing page raises.  A record that does not convert
    keeps its stack's last good state (``skip``); one without a usable ``id``
    makes the listing incomplete.  A 403 (the policy ``stacks:global_index`` not
    granted) is permanent, and :meth:`available` names that policy in one
    line.  Threading: one worker thread uses an instance.
    """

    name: ClassVar[str] = "heat.stack"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.STACK,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    service_type: ClassVar[str] = "orchestration"
    path: ClassVar[str] = "/stacks"
    collection: ClassVar[str] = "stacks"
    links_key: ClassVar[str | None] = "links"
    record_name: ClassVar[str] = "Heat stack"

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            *super().get_options(),
            cfg.BoolOpt(
                "show_nested",
                default=True,
                help="List nested stacks too (Heat notifies about them as well).",
            ),
        ]

    def query(self) -> dict[str, Any]:
        params: dict[str, Any] = {"global_tenant": True, **super().query()}
        if self.options.show_nested:
            params["show_nested"] = True
        return params

    def available(self) -> bool | str:
        verdict = super().available()
        if verdict is not True:
            return verdict
        try:
            self.adapter().get(self.path, params={"global_tenant": True, "limit": 1})
        except ks_exc.Forbidden:
            return POLICY_MISSING
        except ks_exc.ClientException:
            return True  # down or refusing otherwise: the listing retries and says why
        return True

    def classify_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ks_exc.Forbidden):
            return PermanentError(POLICY_MISSING)
        return super().classify_error(exc)

    def build(self, record: Any) -> Entity:
        return shapes.from_api(self, record)
