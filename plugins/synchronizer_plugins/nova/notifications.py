"""Nova notifications → ``nova.instance`` and ``nova.host`` changes.

Nova publishes on the ``nova`` exchange in two formats, and with
``[notifications] notification_format = both`` it sends every event twice,
once per format.  This plugin consumes exactly one, chosen by ``format``:

* ``versioned`` (default; topic ``versioned_notifications``): ``instance.*``
  events with an ``Instance*Payload`` (wrapped in ``nova_object.*``, nested
  objects such as the flavor wrapped too), and ``service.delete``;
* ``legacy`` (topic ``notifications``): ``compute.instance.*`` events, whose
  payload is a flat dict (``nova.notifications.base.info_from_instance``).

``topics`` defaults to the format's topic.  Both formats map to the shapes
of :mod:`synchronizer_plugins.nova.shapes`, so a pushed state fingerprints like the
polled one::

    [nova.notifications]
    format = versioned
    volume_relations = true     # as in [nova.instance]

Mapping rules:

* an instance event whose state is vm_state ``deleted``, and
  ``instance.delete.end`` / ``compute.instance.delete.end``, delete the
  instance; ``*.create.*`` events create it; every other instance event
  (``.start``, ``.end``, ``.error``, ``instance.update``, ``instance.exists``,
  lock/unlock, ...) is an update with the state its payload carries, a
  transitional one for ``.start`` (e.g. ACTIVE with task_state ``pausing``,
  exactly what a poll at that moment shows);
* ``service.delete`` of a ``nova-compute`` service deletes its ``nova.host``.

Ignored on purpose, by :func:`ignore_reason`: events that state no instance
or host (:data:`IGNORED_FAMILIES`: aggregate.*, keypair.*, flavor.*,
server_group.*, scheduler.*, metrics.*, volume.usage, compute.exception,
compute_task.*, libvirt.*), ``service.create`` / ``service.update`` (the
payload carries neither the host's zone, which Nova leaves null, nor its
hypervisor nodes, so it cannot state a whole ``nova.host``; polls report
those changes), services other than ``nova-compute``, an ``instance.*`` event
whose payload is not an instance payload, and events of the other format.

Invalid (:class:`~synchronizer.errors.InvalidNotification`): a payload
that is not a nova object, an unsupported major version
(:data:`SUPPORTED_MAJORS`), missing or mistyped fields.

Volume relations: a versioned payload lists the attached volumes only when
nova.conf has ``[notifications] bdms_in_notifications = true`` (false by
default), a legacy payload never.  Without them, a pushed state of an
instance with volumes lacks its ``attached`` relations and fingerprints
unlike the polled one (a warning says so once).  Either enable that Nova
option (versioned format) or set ``volume_relations = false`` in this group
and in the ``nova.instance`` group (``cinder.volume`` carries the same edge).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from oslo_config import cfg

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Change
from synchronizer.plugin_base import EntityDoc, Notification, NotificationPlugin
from synchronizer_plugins import fields
from synchronizer_plugins.nova import shapes

LOG = logging.getLogger(__name__)

__all__ = [
    "IGNORED_FAMILIES",
    "SUPPORTED_MAJORS",
    "NovaNotifications",
    "ignore_reason",
    "legacy_instance",
    "unwrap",
    "versioned_instance",
]

VERSIONED = "versioned"
LEGACY = "legacy"
TOPICS = {VERSIONED: "versioned_notifications", LEGACY: "notifications"}
EVENT_TYPES = {VERSIONED: (r"instance\.", r"service\.delete$"), LEGACY: (r"compute\.instance\.",)}

#: Payload majors this plugin reads; any other payload is major 1 only.
SUPPORTED_MAJORS: dict[str, frozenset[int]] = {
    "InstanceUpdatePayload": frozenset({1, 2}),
    "InstanceExistsPayload": frozenset({1, 2}),
}
_INSTANCE_PAYLOAD = re.compile(r"^Instance\w*Payload$")
_DELETE_EVENTS = frozenset({"instance.delete.end", "compute.instance.delete.end"})

#: Event families that state no instance or host, and why they are ignored.
IGNORED_FAMILIES: dict[str, str] = {
    "aggregate": "host aggregates: zone membership comes from polls",
    "compute": "compute.exception and compute.metrics carry no state",
    "compute_task": "conductor errors; the conductor sends instance.update for the state it sets",
    "flavor": "flavors are not entities (instances carry the flavor name)",
    "keypair": "key pairs are not entities",
    "libvirt": "hypervisor connection errors, not a state",
    "metrics": "compute node metric samples, not a state",
    "scheduler": "scheduling requests, not a state",
    "server_group": "server groups are not entities",
    "volume": "volume usage accounting, not a state",
}
SERVICE_CHANGE_REASON = (
    "a service payload states neither the host's zone nor its nodes; polls report it"
)
OTHER_FORMAT = "an event of the format this plugin does not consume"
NOT_AN_INSTANCE = "the payload is not an instance payload"
NOT_A_HOST = "the service is not nova-compute, so not a host"


def ignore_reason(event_type: str, fmt: str) -> str | None:
    """Why events of this type are deliberately ignored in format ``fmt``.

    None means the event type may map (the payload may still be ignored, see
    :meth:`NovaNotifications.why_ignored`) or belongs to no known family.
    """
    if event_type.startswith("compute.instance."):
        return None if fmt == LEGACY else OTHER_FORMAT
    if fmt == LEGACY and event_type.startswith(("instance.", "service.")):
        return OTHER_FORMAT
    if event_type in ("service.create", "service.update"):
        return SERVICE_CHANGE_REASON
    return IGNORED_FAMILIES.get(event_type.split(".", 1)[0])


def unwrap(obj: Any, what: str = "payload") -> tuple[str, Mapping[str, Any]]:
    """The name and data of a versioned nova object; InvalidNotification if not one.

    Checks the major version against :data:`SUPPORTED_MAJORS` (1 by default).
    """
    if not isinstance(obj, Mapping) or not isinstance(obj.get("nova_object.data"), Mapping):
        raise InvalidNotification(f"{what} is not a versioned nova object")
    name, version = obj.get("nova_object.name"), obj.get("nova_object.version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise InvalidNotification(f"{what} has no nova_object.name or nova_object.version")
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) not in SUPPORTED_MAJORS.get(name, frozenset({1})):
        raise InvalidNotification(f"{what} {name} has unsupported version {version}")
    return name, obj["nova_object.data"]


def _nested(obj: Any, what: str) -> Mapping[str, Any]:
    """A nested object's data: unwrapped (version-checked) if wrapped, as is if plain."""
    if isinstance(obj, Mapping) and "nova_object.data" in obj:
        return unwrap(obj, what)[1]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what} is a {type(obj).__name__}, not an object")
    return obj


def _volumes(block_devices: Any) -> tuple[str, ...] | None:
    if block_devices is None:
        return None
    if not isinstance(block_devices, list):
        raise ValueError("'block_devices' is not a list")
    return tuple(
        str(shapes.text(_nested(b, "block device"), "volume_id", required=True))
        for b in block_devices
    )


def _common_facts(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The instance facts both payload formats carry under the same names."""
    return {
        "project": shapes.text(payload, "tenant_id", required=True),
        "vm_state": str(shapes.text(payload, "state", required=True)),
        "name": shapes.label(payload, "display_name"),
        "host": shapes.text(payload, "host"),
        "node": shapes.text(payload, "node"),
        "availability_zone": shapes.text(payload, "availability_zone"),
        "user_id": shapes.text(payload, "user_id"),
        "created_at": fields.seconds(payload.get("created_at")),
        "metadata": shapes.mapping(payload, "metadata"),
    }


def versioned_instance(data: Mapping[str, Any]) -> shapes.Instance:
    """Instance facts from an unwrapped ``Instance*Payload``; ValueError if unusable."""
    flavor = data.get("flavor")
    return shapes.Instance(
        uuid=str(shapes.text(data, "uuid", required=True)),
        **_common_facts(data),
        task_state=shapes.text(data, "task_state"),
        flavor=shapes.text(_nested(flavor, "flavor"), "name") if flavor is not None else None,
        image=shapes.text(data, "image_uuid"),
        volumes=_volumes(data.get("block_devices")),
    )


def _legacy_image(payload: Mapping[str, Any]) -> str | None:
    """The instance's image_ref: image_ref_url is ``<glance>/images/<image_ref>``.

    (Or the bare image_ref when Nova found no image endpoint, or ``.../``
    when booted from a volume.)  ``image_meta.base_image_ref`` is only a
    fallback: for an instance booted from a snapshot it names the snapshot's
    original image, not the one the API shows.
    """
    if "image_ref_url" not in payload:
        return shapes.text(shapes.mapping(payload, "image_meta"), "base_image_ref")
    url = shapes.text(payload, "image_ref_url")
    if url is None:
        return None
    return url.rsplit("/", 1)[-1] or None


def legacy_instance(payload: Mapping[str, Any]) -> shapes.Instance:
    """Instance facts from a legacy ``compute.instance.*`` payload; ValueError if unusable."""
    return shapes.Instance(
        uuid=str(shapes.text(payload, "instance_id", required=True)),
        **_common_facts(payload),
        task_state=shapes.text(payload, "state_description"),
        flavor=shapes.text(payload, "instance_type"),
        image=_legacy_image(payload),
        volumes=None,
    )


def instance_action(event_type: str, instance: shapes.Instance) -> Action:
    """Delete for a deleted state or a delete.end event, create for create events."""
    if instance.deleted or event_type in _DELETE_EVENTS:
        return Action.DELETE
    if ".create." in f"{event_type}.":
        return Action.CREATE
    return Action.UPDATE


class NovaNotifications(NotificationPlugin):
    """Converts Nova notifications of one format into instance and host changes.

    Stateless apart from a warn-once flag; ``convert`` is pure otherwise.
    """

    name: ClassVar[str] = "nova.notifications"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.INSTANCE, shapes.HOST)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.INSTANCE_DOC, shapes.HOST_DOC)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    default_exchange: ClassVar[str] = "nova"
    default_topics: ClassVar[tuple[str, ...]] = ()
    event_types: ClassVar[tuple[str, ...]] = EVENT_TYPES[VERSIONED] + EVENT_TYPES[LEGACY]

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "format",
                default=VERSIONED,
                choices=(VERSIONED, LEGACY),
                help="Notification format to consume. With nova.conf notification_format "
                "= both, Nova sends each event in both formats; only this one is used.",
            ),
            cfg.BoolOpt(
                "volume_relations",
                default=True,
                help="Give instances an 'attached' relation to each attached cinder.volume "
                "(needs nova.conf [notifications] bdms_in_notifications = true). Set it as "
                "in the nova.instance group.",
            ),
        ]

    @classmethod
    def all_options(cls) -> list[cfg.Opt]:
        topics = cfg.ListOpt(
            "topics",
            default=[],
            help="Notification topics to listen to (default: versioned_notifications "
            "for format=versioned, notifications for format=legacy).",
        )
        return [topics if o.dest == "topics" else o for o in super().all_options()]

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        self.format: str = self.options.format
        self._format_re = re.compile("|".join(f"(?:{p})" for p in EVENT_TYPES[self.format]))
        self._warned_volumes = False
        if self.format == LEGACY and self.options.volume_relations:
            self._warn_volumes("legacy payloads never list attached volumes")

    @property
    def topics(self) -> list[str]:
        return list(self.options.topics) or [TOPICS[self.format]]

    def accepts(self, event_type: str, publisher_id: str) -> bool:
        return super().accepts(event_type, publisher_id) and bool(
            self._format_re.match(event_type or "")
        )

    def why_ignored(self, notification: Notification) -> str | None:
        """The rule by which this plugin ignores a notification, or None if it maps.

        Raises InvalidNotification when the payload it must look at is malformed.
        """
        event_type = notification.event_type
        reason = ignore_reason(event_type, self.format)
        if reason or self.format == LEGACY:
            return reason
        if event_type.startswith("instance."):
            name, _data = unwrap(notification.payload)
            return None if _INSTANCE_PAYLOAD.match(name) else NOT_AN_INSTANCE
        if event_type == "service.delete":
            _name, data = unwrap(notification.payload)
            return None if data.get("binary") == "nova-compute" else NOT_A_HOST
        return None

    def convert(self, notification: Notification) -> Iterable[Change]:
        event_type = notification.event_type
        reason = self.why_ignored(notification)
        if reason:
            LOG.debug("%s: ignored %s: %s", self.group, event_type, reason)
            return []
        if self.format == LEGACY:
            if event_type.startswith("compute.instance."):
                return [self._legacy(notification)]
        elif event_type.startswith("instance."):
            return [self._versioned(notification)]
        elif event_type == "service.delete":
            return [self._service_delete(notification)]
        LOG.debug("%s: ignored %s: no rule maps it", self.group, event_type)
        return []

    def _versioned(self, notification: Notification) -> Change:
        name, data = unwrap(notification.payload)
        try:
            instance = versioned_instance(data)
        except ValueError as exc:
            raise InvalidNotification(f"{name}: {exc}") from exc
        if instance.volumes is None and self.options.volume_relations:
            self._warn_volumes("Nova sends no block devices (bdms_in_notifications = false)")
        return self._instance_change(notification, instance)

    def _legacy(self, notification: Notification) -> Change:
        if not isinstance(notification.payload, Mapping):
            raise InvalidNotification("legacy payload is not an object")
        try:
            instance = legacy_instance(notification.payload)
        except ValueError as exc:
            raise InvalidNotification(f"legacy instance payload: {exc}") from exc
        return self._instance_change(notification, instance)

    def _instance_change(self, notification: Notification, instance: shapes.Instance) -> Change:
        entity = instance.entity(
            self, volume_relations=self.options.volume_relations, timestamp=notification.timestamp
        )
        return self.change(instance_action(notification.event_type, instance), entity)

    def _service_delete(self, notification: Notification) -> Change:
        name, data = unwrap(notification.payload)
        try:
            host = str(shapes.text(data, "host", required=True))
        except ValueError as exc:
            raise InvalidNotification(f"{name}: {exc}") from exc
        return self.change(
            Action.DELETE, self.entity(shapes.HOST, host, timestamp=notification.timestamp)
        )

    def _warn_volumes(self, why: str) -> None:
        if not self._warned_volumes:
            self._warned_volumes = True
            LOG.warning(
                "%s: %s, so pushed instance states lack their volume relations and "
                "fingerprint unlike polled ones; enable bdms_in_notifications in nova.conf, "
                "or set volume_relations = false here and in the nova.instance group",
                self.group,
                why,
            )
