"""The ``nagios.host`` collector: Nagios Core host states from ``statusjson.cgi``.

Enable it as ``plugins = nagios.host``; its options are those of
``nagios.service`` (``url``, ``username``, ``password``, ``host_type``...)
in its own group::

    [nagios.host]
    url = https://nagios.example.com/nagios/cgi-bin/statusjson.cgi
    username = synchronizer
    password = ...

It asks ``?query=hostlist&details=true``; paging, errors and secrets are
handled as for services (:mod:`synchronizer_plugins.nagios.services`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc
from synchronizer_plugins.nagios import services

LOG = logging.getLogger(__name__)

HOST = "nagios.host"
# statusjson format_version 0 host status bits (cgi/statusjson.h).
STATUS_CODES: dict[int, str] = {1: "PENDING", 2: "UP", 4: "DOWN", 8: "UNREACHABLE"}

DOC = EntityDoc(
    type=HOST,
    summary="A host as Nagios Core checks it (its own host check, not its services').",
    key="the host's name (`name`)",
    state="the Nagios host status",
    states=tuple(STATUS_CODES.values()),
    parent=services.DOC.parent,
    parent_meaning="the same host as the cloud knows it (`name`); its type is the "
    "`host_type` option, `nova.host` by default",
    # The service shape but the description, with the same meanings.
    properties={k: v for k, v in services.DOC.properties.items() if k != "description"},
    volatile=services.VOLATILE,
)


def status_name(value: Any) -> str:
    """The normalised Nagios host status of a numeric code (1, 2, 4, 8) or a name."""
    if isinstance(value, int) and not isinstance(value, bool) and value in STATUS_CODES:
        return STATUS_CODES[value]
    if isinstance(value, str) and value.upper() in STATUS_CODES.values():
        return value.upper()
    raise ValueError(f"unknown Nagios host status {value!r}")


class HostCollector(services.ServiceCollector):
    """Polls Nagios Core's ``statusjson.cgi`` hostlist and yields ``nagios.host`` entities.

    Normalised shape: key the host's ``name``; state ``UP``, ``DOWN``,
    ``UNREACHABLE`` or ``PENDING`` (format_version 0's codes 2, 4, 8, 1, or
    names); no project; parent ``(<host_type>, name)``, the monitored host
    (``nova.host`` by default); properties ``host_name``, ``state_type``,
    the counts, flags and state-change times of ``nagios.service``; the
    same volatile timers and output (never a cause of an update).

    Contract as :class:`~synchronizer_plugins.nagios.services.ServiceCollector`:
    any HTTP error, timeout, non-JSON answer or statusjson error raises (the
    listing is then incomplete), a 401/403 is permanent, a record with an
    unknown status keeps its entity's last good state (``skip``).  Threading: one worker thread
    uses an instance.
    """

    name: ClassVar[str] = "nagios.host"
    entity_types: ClassVar[tuple[str, ...]] = (HOST,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (DOC,)
    volatile_properties: ClassVar[frozenset[str]] = services.VOLATILE
    query: ClassVar[str] = "hostlist"

    def list_all(self) -> Iterator[Entity]:
        for name, record in self.status_list().items():
            entity = self._host(name, record)
            if entity is not None:
                yield entity

    def _host(self, name: str, record: Any) -> Entity | None:
        try:
            if not isinstance(record, Mapping):
                raise ValueError(f"host record is {type(record).__name__}, not an object")
            name = record.get("name") or record.get("host_name") or name
            props = services.service_properties(record, name, "")
            del props["description"]
            return self.entity(
                HOST,
                name,
                state=status_name(record.get("status")),
                parent=(self.options.host_type, name),
                properties=props,
            )
        except ValueError as exc:
            self.skip(HOST, name, str(exc))  # it keeps its last good state
            return None
