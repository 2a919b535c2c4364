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
from synchronizer.plugin_base import EntityDoc, Plugin
from synchronizer_plugins import fields

VOLUME = "cinder.volume"
INSTANCE = "nova.instance"
ATTACHED = "attached"
VOLATILE: frozenset[str] = frozenset()

# The attachment statuses Cinder's API view shows (it hides the others).
_LIVE_ATTACHMENT = frozenset({"attached"})


# Where each part of the shape is, in an API volume and in a notification payload
# (the table at the top).
_API = {
    "key": "id",
    "state": "status",
    "project": "os-vol-tenant-attr:tenant_id",
    "attachments": "attachments",
    "name": "name",
    "size": "size",
    "availability_zone": "availability_zone",
    "host": "os-vol-host-attr:host",
    "volume_type_id": "volume_type_id",
    "snapshot_id": "snapshot_id",
    "user_id": "user_id",
    "created_at": "created_at",
}
_PAYLOAD = {
    **_API,
    "key": "volume_id",
    "project": "tenant_id",
    "attachments": "volume_attachment",
    "name": "display_name",
    "host": "host",
    "volume_type_id": "volume_type",
}
_PROPERTIES = (
    "name",
    "size",
    "availability_zone",
    "host",
    "volume_type_id",
    "snapshot_id",
    "user_id",
    "created_at",
)


#: The volume statuses of the Block Storage API reference.
STATES: tuple[str, ...] = (
    "creating",
    "available",
    "reserved",
    "attaching",
    "detaching",
    "in-use",
    "maintenance",
    "deleting",
    "awaiting-transfer",
    "error",
    "error_deleting",
    "backing-up",
    "restoring-backup",
    "error_backing-up",
    "error_restoring",
    "error_extending",
    "downloading",
    "uploading",
    "retyping",
    "extending",
)

DOC = EntityDoc(
    type=VOLUME,
    summary="A Cinder block storage volume, of any project.",
    key="volume UUID (`id`; `volume_id` in notifications)",
    state="Cinder's volume status, as the API shows it",
    states=STATES,
    project="the project that owns the volume (`os-vol-tenant-attr:tenant_id`)",
    relations=((ATTACHED, INSTANCE, "each server it is attached to (live attachments only)"),),
    properties={
        "name": "volume name",
        "size": "size in GiB (an integer)",
        "availability_zone": "availability zone",
        "host": "the cinder-volume backend holding it (`os-vol-host-attr:host`, "
        "`host@backend#pool`)",
        "volume_type_id": "volume type UUID",
        "snapshot_id": "the snapshot it was created from, or null",
        "user_id": "the user who created it",
        "created_at": "creation time (UTC, to the second)",
    },
    volatile=VOLATILE,
)


def from_api(plugin: Plugin, record: Mapping[str, Any]) -> Entity:
    """The entity of one API volume record; raises ValueError if it is unusable."""
    return _volume(plugin, fields.mapping(record, "volume"), _API)


def from_payload(plugin: Plugin, payload: Mapping[str, Any], timestamp: str) -> Entity:
    """The entity of one ``volume.*`` notification payload; raises ValueError if malformed."""
    return _volume(plugin, fields.mapping(payload, "payload"), _PAYLOAD, timestamp)


def _volume(
    plugin: Plugin, record: Mapping[str, Any], names: dict[str, str], timestamp: str | None = None
) -> Entity:
    attachments = names["attachments"]
    return plugin.entity(
        VOLUME,
        fields.required_str(record, names["key"]),
        state=_text(record.get(names["state"])),
        project=_text(record.get(names["project"])),
        relations=_attached(record.get(attachments), attachments),
        properties=_properties({prop: record.get(names[prop]) for prop in _PROPERTIES}),
        timestamp=timestamp,
    )


def _properties(raw: dict[str, Any]) -> dict[str, Any]:
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
