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

from oslo_config import cfg

from synchronizer.model import Entity
from synchronizer_plugins.heat import shapes
from synchronizer_plugins.openstack import PagedCollector


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
    ``links``); any failing page raises.  A record without a usable ``id``
    is logged and skipped.  Threading: one worker thread uses an instance.
    """

    name: ClassVar[str] = "heat.stack"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.STACK,)
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

    def build(self, record: Any) -> Entity:
        return shapes.from_api(self, record)
