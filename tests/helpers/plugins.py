"""Small real plugins for tests, importable by class path in worker processes.

They are real plugins (no mocks): a collector reading entities from a JSON
file that tests rewrite, one that always fails, ones that fail to load, and a
notification plugin mapping ``test.thing.*`` events.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import ClassVar

from oslo_config import cfg

from synchronizer.errors import InvalidNotification
from synchronizer.model import Action, Change, Entity
from synchronizer.plugin_base import CollectorPlugin, Notification, NotificationPlugin


class FileCollector(CollectorPlugin):
    """Lists ``{"key": state}`` (or full entity dicts) from a JSON file.

    A file holding ``"FAIL"`` makes the listing raise part way, ``"HANG"``
    blocks it for ever (in ``Event.wait()``, where no timeout reaches); a
    state that is not a string is a record that does not convert (reported
    with ``skip``).
    """

    name: ClassVar[str] = "filecollector"
    entity_types: ClassVar[tuple[str, ...]] = ("test.thing",)
    default_period: ClassVar[float] = 0.2

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [cfg.StrOpt("path", default="things.json", help="JSON file to list.")]

    def list_all(self) -> Iterator[Entity]:
        data = json.loads(Path(self.options.path).read_text())
        if data == "FAIL":
            raise ConnectionError("service unavailable")
        if data == "HANG":
            threading.Event().wait()
        for key, state in sorted(data.items()):
            if not isinstance(state, str):
                self.skip("test.thing", key, f"state is a {type(state).__name__}")
                continue
            yield self.entity("test.thing", key, state=state, properties={"n": len(key)})


class NeverAvailable(CollectorPlugin):
    name: ClassVar[str] = "neveravailable"

    def available(self) -> bool | str:
        return "the thing it needs is not installed"

    def list_all(self) -> Iterable[Entity]:
        return []


class RaisesInInit(CollectorPlugin):
    name: ClassVar[str] = "raisesininit"

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        raise RuntimeError("broken plugin constructor")

    def list_all(self) -> Iterable[Entity]:
        return []


class RequiresUrl(CollectorPlugin):
    """The README's rack plugin without its ``url``: must not start (it would list nothing)."""

    name: ClassVar[str] = "requires_url"
    entity_types: ClassVar[tuple[str, ...]] = ("test.rack",)

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [cfg.StrOpt("url", required=True, help="Where the racks are listed.")]

    def list_all(self) -> Iterable[Entity]:
        return []


class NotAPlugin:
    """A class that is not a plugin at all."""


class ThingNotifications(NotificationPlugin):
    """``test.thing.update`` → update, ``test.thing.delete`` → delete."""

    name: ClassVar[str] = "thingnotifications"
    entity_types: ClassVar[tuple[str, ...]] = ("test.thing",)
    default_exchange: ClassVar[str] = "testexchange"
    default_topics: ClassVar[tuple[str, ...]] = ("test_notifications",)
    event_types: ClassVar[tuple[str, ...]] = (r"test\.thing\.",)

    def convert(self, notification: Notification) -> list[Change]:
        payload = notification.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
            raise InvalidNotification("payload needs a string 'key'")
        entity = self.entity(
            "test.thing",
            payload["key"],
            state=payload.get("state"),
            properties={"n": len(payload["key"])},
            timestamp=notification.timestamp,
        )
        if notification.event_type.endswith(".delete"):
            return [self.change(Action.DELETE, entity)]
        return [self.change(Action.UPDATE, entity)]
