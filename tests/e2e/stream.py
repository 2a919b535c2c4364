"""What an out-of-process consumer of the e2e daemon received, and when.

A :class:`Stream` is the callback of ``synchronizer.outputs.client.watch``:
it records every change with the poll cycles each collector had logged
when it arrived, so a test can tell a push that came before the next poll
from a change the poll found.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Collection

import pytest

from synchronizer import fingerprint
from synchronizer.model import Change, Synced
from tests.helpers.daemon import Daemon


def cycles(daemon: Daemon, plugin: str) -> int:
    """Full poll cycles ``plugin`` has logged so far."""
    return daemon.count_logs(f"{plugin}: full cycle")


@dataclasses.dataclass
class Received:
    change: Change
    cycles: int  # poll cycles of the entity type's collector when this arrived
    at: float  # time.monotonic() on arrival

    @property
    def kind(self) -> str:
        return self.change.entity.source.kind if self.change.entity.source else "-"


class Stream:
    """What the consumer received, in order, with a condition to wait on.

    ``collectors`` maps an entity type to the collector plugin that polls it
    (whose cycles are counted on arrival); ``volatile`` an entity type to
    its volatile properties (left out of :meth:`fingerprint`).
    """

    def __init__(
        self,
        daemon: Daemon,
        collectors: dict[str, str],
        volatile: dict[str, Collection[str]],
        counter: Callable[[Daemon, str], int] = cycles,
    ) -> None:
        self.daemon = daemon
        self.collectors = collectors
        self.volatile = volatile
        self.counter = counter  # the poll cycles of a plugin so far (full ones by default)
        self.items: list[Received] = []
        self.synced = threading.Event()
        self._cond = threading.Condition()

    def on_item(self, item: Change | Synced) -> None:
        if isinstance(item, Synced):
            self.synced.set()
            return
        plugin = self.collectors.get(item.entity.type, "")
        n = self.counter(self.daemon, plugin) if plugin else 0
        with self._cond:
            self.items.append(Received(item, n, time.monotonic()))
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.items)

    def since(self, mark: int, key: str | None = None) -> list[Received]:
        with self._cond:
            items = self.items[mark:]
        return [r for r in items if key is None or r.change.key == key]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], mark: int = 0, timeout: float = 90
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.items[mark:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out; received since mark: {brief(self.items[mark:])}")
                self._cond.wait(left)
            return list(self.items[mark:])

    def live(self) -> dict[tuple[str, str], Change]:
        """The world rebuilt from everything received."""
        world: dict[tuple[str, str], Change] = {}
        with self._cond:
            for r in self.items:
                ident = (r.change.entity.type, r.change.key)
                if r.change.action == "delete":
                    world.pop(ident, None)
                else:
                    world[ident] = r.change
        return world

    def fingerprint(self, r: Received) -> int:
        entity = r.change.entity
        return fingerprint.of(entity, frozenset(self.volatile.get(entity.type, ())))


def of(items: list[Received], key: str, action: str | None = None) -> list[Received]:
    return [
        r for r in items if r.change.key == key and (action is None or r.change.action == action)
    ]


def has_state(items: list[Received], key: str, state: str, **props: object) -> bool:
    """Whether a change of ``key`` in ``state`` (with those properties) was received."""
    return any(
        r.change.action != "delete"
        and r.change.entity.state == state
        and all(r.change.entity.properties.get(k) == v for k, v in props.items())
        for r in of(items, key)
    )


def brief(items: list[Received]) -> list[str]:
    return [
        f"{r.change.action} {r.change.entity.type} {r.change.key[:8]} {r.change.entity.state} "
        f"{r.kind} cycles={r.cycles}"
        for r in items
    ][-40:]
