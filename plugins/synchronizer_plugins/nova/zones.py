"""The ``nova.zone`` collector: availability zones from ``os-availability-zone/detail``.

One entity per zone, keyed by its name: state ``available`` or
``unavailable`` (``zoneState.available``), properties ``hosts`` (the host
names Nova lists in the zone, sorted; Nova lists only hosts with an enabled
service, and none for an unavailable zone).  Nova's ``internal`` zone (where
it puts conductors, schedulers and other non-compute services; the name is
``internal_service_availability_zone`` in nova.conf) is not a placement
zone and is left out; ``internal_zone`` names it.  No notification reports
zones (aggregate.* events change them), so zones come from polls only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from oslo_config import cfg

from synchronizer.errors import InvalidRecord
from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.collector import NovaCollector

LOG = logging.getLogger(__name__)

__all__ = ["ZoneCollector", "zone_facts"]


def zone_facts(record: Mapping[str, Any]) -> shapes.Zone:
    """The facts of one ``availabilityZoneInfo`` item; ValueError if unusable."""
    state = shapes.mapping(record, "zoneState")
    available = state.get("available")
    if not isinstance(available, bool):
        raise ValueError("'zoneState.available' is not a boolean")
    return shapes.Zone(
        name=str(shapes.text(record, "zoneName", required=True)),
        available=available,
        hosts=tuple(shapes.mapping(record, "hosts")),
    )


class ZoneCollector(NovaCollector):
    """Polls Nova's availability zones into ``nova.zone`` entities."""

    name: ClassVar[str] = "nova.zone"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.ZONE,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.ZONE_DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            *super().get_options(),
            cfg.StrOpt(
                "internal_zone",
                default="internal",
                help="Nova's zone of non-compute services "
                "(nova.conf internal_service_availability_zone), left out.",
            ),
        ]

    def list_all(self) -> Iterator[Entity]:
        body = self.get("/os-availability-zone/detail")
        records = body.get("availabilityZoneInfo")
        if not isinstance(records, list):
            raise InvalidRecord("GET /os-availability-zone/detail: no availabilityZoneInfo list")
        for record in records:
            try:
                zone = zone_facts(record)
            except ValueError as exc:
                raise InvalidRecord(f"availability zone record: {exc}") from exc
            if zone.name != self.options.internal_zone:
                yield zone.entity(self)
