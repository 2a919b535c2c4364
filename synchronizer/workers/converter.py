"""Turning raw notifications into changes, whatever they hold.

:class:`Converter` is the one path every notification takes, from the bus
(the notification worker) or from a file (``synchronizer-replay``).  It
validates the envelope, normalises the priority and timestamp, picks the
plugins that take the event type and publisher, and calls them.  Bad input
(not a dict, missing or mistyped ``event_type``/``payload``, oversized,
unknown payload version, a plugin choking on odd data) is logged once with
its event type and message id, counted, and dropped: it never raises::

    >>> conv = Converter([], max_bytes=1024)
    >>> conv.convert({"event_type": "x.y", "payload": {}})
    []
    >>> conv.counts["ignored"]
    1
"""

from __future__ import annotations

import collections
import logging
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from synchronizer import clouds, fingerprint, timeutil
from synchronizer.errors import InvalidNotification
from synchronizer.model import Change
from synchronizer.plugin_base import Notification, NotificationPlugin
from synchronizer.wire import EventCount, NotificationStats, Outcome

LOG = logging.getLogger(__name__)


class Converter:
    """Validates and converts notifications with a list of plugins.

    Counters (``counts``, by :class:`~synchronizer.wire.Outcome`):
    ``received``, ``mapped`` (gave ≥ 1 change), ``ignored`` (no plugin took
    it, or the plugin returned nothing) and ``dropped`` (bad input);
    ``by_event`` counts the same per ``(plugin, event_type, outcome)``;
    :meth:`stats` reports both as the worker sends them.  Threading:
    ``convert`` may be called from several threads; counters are only
    approximately exact then.
    """

    def __init__(self, plugins: Sequence[NotificationPlugin], max_bytes: int) -> None:
        self.plugins = list(plugins)
        self.max_bytes = max_bytes
        self.counts: collections.Counter[Outcome] = collections.Counter()
        self.by_event: collections.Counter[tuple[str, str, Outcome]] = collections.Counter()

    def convert(self, raw: Any, *, topic: str = "", size: int | None = None) -> list[Change]:
        """Changes for one raw notification (a dict as on the wire)."""
        self.counts[Outcome.RECEIVED] += 1
        try:
            notification = self.parse(raw, topic=topic, size=size)
        except InvalidNotification as exc:
            self._drop("-", _field(raw, "event_type"), _field(raw, "message_id"), exc)
            return []
        changes: list[Change] = []
        taken = False
        for plugin in self.plugins:
            if not plugin.accepts(notification.event_type, notification.publisher_id):
                continue
            taken = True
            changes.extend(self._convert_with(plugin, notification))
        if not taken:
            self._count("-", notification.event_type, Outcome.IGNORED)
        return changes

    def stats(self) -> NotificationStats:
        """The counters so far, as the notification worker reports them."""
        counts = self.counts
        return NotificationStats(
            received=counts[Outcome.RECEIVED],
            mapped=counts[Outcome.MAPPED],
            ignored=counts[Outcome.IGNORED],
            dropped=counts[Outcome.DROPPED],
            by_event=tuple(EventCount(*key, n) for key, n in list(self.by_event.items())),
        )

    def parse(self, raw: Any, *, topic: str = "", size: int | None = None) -> Notification:
        """Validate the envelope; raise InvalidNotification naming what is wrong."""
        if not isinstance(raw, Mapping):
            raise InvalidNotification(f"not a JSON object but {type(raw).__name__}")
        event_type = raw.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            raise InvalidNotification("missing or non-string 'event_type'")
        if "payload" not in raw:
            raise InvalidNotification("missing 'payload'")
        if size is None:
            size = _encoded_size(raw["payload"])
        if size > self.max_bytes:
            raise InvalidNotification(f"payload of {size} bytes exceeds {self.max_bytes}")
        try:
            timestamp = timeutil.normalize(raw.get("timestamp") or "")
        except (ValueError, TypeError) as exc:
            raise InvalidNotification(f"bad timestamp {_field(raw, 'timestamp')}") from exc
        return Notification(
            event_type=event_type,
            payload=raw["payload"],
            publisher_id=_text(raw, "publisher_id", ""),
            priority=_text(raw, "priority", "info").lower(),
            timestamp=timestamp,
            message_id=_text(raw, "message_id", ""),
            topic=topic,
        )

    def _convert_with(self, plugin: NotificationPlugin, n: Notification) -> list[Change]:
        try:
            changes = list(plugin.convert(n))
            if plugin.cloud is not None:  # a cloud's notification: that cloud's entities
                changes = [_in_cloud(c, plugin.cloud) for c in changes]
            out = [_fingerprinted(c, plugin.volatile_properties) for c in changes]
        except InvalidNotification as exc:
            self._drop(plugin.group, n.event_type, n.message_id, exc)
            return []
        except Exception as exc:  # noqa: BLE001 - a plugin choking on odd data is bad input
            self._drop(plugin.group, n.event_type, n.message_id, exc)
            return []
        self._count(plugin.group, n.event_type, Outcome.MAPPED if out else Outcome.IGNORED)
        return out

    def _drop(self, plugin: str, event_type: Any, message_id: Any, exc: Exception) -> None:
        LOG.warning(
            "Dropped notification %s (message id %s, plugin %s): %s",
            event_type,
            message_id,
            plugin,
            exc,
        )
        self._count(plugin, str(event_type), Outcome.DROPPED)

    def _count(self, plugin: str, event_type: str, outcome: Outcome) -> None:
        self.counts[outcome] += 1
        self.by_event[(plugin, event_type[:100], outcome)] += 1


def _encoded_size(payload: Any) -> int:
    """The payload's size as JSON; InvalidNotification when it is not JSON-encodable.

    Python's json (what the bus driver decodes with) accepts what orjson will
    not encode again: nesting deeper than 254, lone surrogates, integers
    beyond 64 bits.
    """
    try:
        return len(orjson.dumps(payload, default=str))
    except orjson.JSONEncodeError as exc:
        raise InvalidNotification(f"payload cannot be encoded as JSON: {exc}") from exc


def _fingerprinted(change: Change, volatile: frozenset[str]) -> Change:
    """The change, fingerprinted, once it is one the rest of the pipeline can carry.

    The entity's ``state`` and ``project`` must be strings or null, and the
    whole change must encode (it crosses the process boundary as JSON), or
    the notification is invalid.
    """
    if not isinstance(change, Change):
        raise InvalidNotification(f"plugin returned {type(change).__name__}, not a Change")
    entity = change.entity
    for field in ("state", "project"):
        value = getattr(entity, field)
        if value is not None and not isinstance(value, str):
            raise InvalidNotification(f"{field} must be a string, got {type(value).__name__}")
    try:
        change.to_json()
    except orjson.JSONEncodeError as exc:
        raise InvalidNotification(f"the change cannot be encoded as JSON: {exc}") from exc
    if change.fingerprint or str(change.action) == "delete":
        return change
    return change.replace(fingerprint=fingerprint.of(change.entity, volatile))


def _in_cloud(change: Change, cloud: str) -> Change:
    if not isinstance(change, Change):
        raise InvalidNotification(f"plugin returned {type(change).__name__}, not a Change")
    return change.replace(entity=clouds.namespaced(change.entity, cloud))


def _text(raw: Mapping[str, Any], name: str, default: str) -> str:
    """An optional string field of the envelope; InvalidNotification for another type."""
    value = raw.get(name)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidNotification(f"{name!r} must be a string, got {type(value).__name__}")
    return value


def _field(raw: Any, name: str) -> str:
    """An envelope field for the log, short whatever it holds (reprlib bounds nesting)."""
    value = raw.get(name) if isinstance(raw, Mapping) else None
    if value is None:
        return "?"
    return (value if isinstance(value, str) else reprlib.repr(value))[:100]
