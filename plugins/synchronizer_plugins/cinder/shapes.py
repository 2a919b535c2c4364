"""The one normalised shape of a ``cinder.volume``, from the API or a notification.

Cinder describes a volume in two vocabularies: the Block Storage API's volume
view (``GET /v3/volumes/detail``) and the legacy usage notification payload
(``volume.*``, built by ``cinder.volume.volume_utils._usage_from_volume``).
This module maps both onto one entity, so that the same state seen by a poll
and by a notification has the same fingerprint (DESIGN.md, the key rule):

========================  ==================================  ===========================
entity field              API volume                          notification payload
========================  ==================================  ===========================
key                       ``id``                              ``volume_id``
state                     ``status``                          ``status``
project                   ``os-vol-tenant-attr:tenant_id``    ``tenant_id``
relations                 ``attachments[].server_id``         ``volume_attachment[]``
                                                              ``.instance_uuid`` (or
                                                              ``.server_id``), attached only
``name``                  ``name``                            ``display_name``
``size`` (GiB, int)       ``size``                            ``size`` (may be a string)
``availability_zone``     ``availability_zone``               ``availability_zone``
``host``                  ``os-vol-host-attr:host``           ``host``
``volume_type_id``        ``volume_type_id`` (>= 3.63)        ``volume_type`` (an id)
``snapshot_id``           ``snapshot_id``                     ``snapshot_id``
``user_id``               ``user_id``                         ``user_id``
``created_at``            ``created_at``                      ``created_at``
========================  ==================================  ===========================

Normalisation: empty strings become ``None``; ``created_at`` is UTC at second
precision (the API may show microseconds the notification drops); relations
are ``(attached, nova.instance, <server id>)``, deduplicated.  Left out on
purpose: what only one side carries (``bootable``, ``encrypted``,
``multiattach``, ``description``, ``updated_at``, ``launched_at``) and
``metadata``, whose notification form (a list of DB rows, or ``[]``) does not
reliably match the API's dict.  Volumes have no parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synchronizer.model import Entity
from synchronizer.plugin_base import Plugin
from synchronizer_plugins import fields

VOLUME = "cinder.volume"
INSTANCE = "nova.instance"
ATTACHED = "attached"
VOLATILE: frozenset[str] = frozenset()

# The attachment statuses Cinder's API view shows (it hides the others).
_LIVE_ATTACHMENT = frozenset({"attached"})


def from_api(plugin: Plugin, record: Mapping[str, Any]) -> Entity:
    """The entity of one API volume record; raises ValueError if it is unusable."""
    fields.mapping(record, "volume")
    return plugin.entity(
        VOLUME,
        fields.required_str(record, "id"),
        state=_text(record.get("status")),
        project=_text(record.get("os-vol-tenant-attr:tenant_id")),
        relations=_attached(record.get("attachments"), "attachments"),
        properties=_properties(
            name=record.get("name"),
            size=record.get("size"),
            availability_zone=record.get("availability_zone"),
            host=record.get("os-vol-host-attr:host"),
            volume_type_id=record.get("volume_type_id"),
            snapshot_id=record.get("snapshot_id"),
            user_id=record.get("user_id"),
            created_at=record.get("created_at"),
        ),
    )


def from_payload(plugin: Plugin, payload: Mapping[str, Any], timestamp: str) -> Entity:
    """The entity of one ``volume.*`` notification payload; raises ValueError if malformed."""
    fields.mapping(payload, "payload")
    return plugin.entity(
        VOLUME,
        fields.required_str(payload, "volume_id"),
        state=_text(payload.get("status")),
        project=_text(payload.get("tenant_id")),
        relations=_attached(payload.get("volume_attachment"), "volume_attachment"),
        properties=_properties(
            name=payload.get("display_name"),
            size=payload.get("size"),
            availability_zone=payload.get("availability_zone"),
            host=payload.get("host"),
            volume_type_id=payload.get("volume_type"),
            snapshot_id=payload.get("snapshot_id"),
            user_id=payload.get("user_id"),
            created_at=payload.get("created_at"),
        ),
        timestamp=timestamp,
    )


def _properties(**raw: Any) -> dict[str, Any]:
    props = {name: _text(value) for name, value in raw.items()}
    props["size"] = _size(raw["size"])
    props["created_at"] = fields.seconds(raw["created_at"])
    return props


def _attached(attachments: Any, field: str) -> list[tuple[str, str, str]]:
    """``attached`` relations to the servers of the live attachments."""
    if attachments is None:
        return []
    if not isinstance(attachments, list):
        raise ValueError(f"{field} must be a list, got {type(attachments).__name__}")
    servers: set[str] = set()
    for attachment in attachments:
        server = _attachment_server(attachment, field)
        if server:
            servers.add(server)
    return [(ATTACHED, INSTANCE, server) for server in sorted(servers)]


def _attachment_server(attachment: Any, field: str) -> str | None:
    if not isinstance(attachment, Mapping):
        raise ValueError(f"{field} items must be objects, got {type(attachment).__name__}")
    status = attachment.get("attach_status")
    if status is not None and status not in _LIVE_ATTACHMENT:
        return None
    server = attachment.get("server_id") or attachment.get("instance_uuid")
    return server if isinstance(server, str) and server else None


def _size(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"size must be a number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"size must be a number, got {value!r}") from None


def _text(value: Any) -> Any:
    return None if value == "" else value
