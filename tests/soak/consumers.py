"""Out-of-process consumers of the daemon's stream, on the real broker.

* the **checker**: :func:`synchronizer.outputs.client.watch` (the view over RPC,
  then the stream with the per-key sequence gate) feeding a
  :class:`~tests.soak.checker.StreamChecker`, which rebuilds the world;
* a **raiser**: :func:`synchronizer.outputs.client.subscribe` whose callback raises
  on every third change;
* a **staller**: one whose callback sleeps for seconds now and then;
* in a fleet, a **wire recorder**: :func:`~synchronizer.outputs.client.subscribe`
  keeping a digest of every change exactly as the stream carried it (repeats
  included, which a watcher drops), to be held against what the shared store
  committed (:mod:`tests.soak.fleetchecks`).

Each listens in its own pool, so none takes messages from another; the
last two show that a consumer failing or lagging harms nobody else.  Every
raw payload received is kept for the secrets check.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import xxhash
from oslo_config import cfg

from synchronizer.model import Change, Synced
from synchronizer.outputs import client
from tests.soak.checker import StreamChecker


class Recorder:
    """Counts what a consumer got and keeps the text of every payload."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received = 0
        self.texts: list[str] = []

    def note(self, item: Change | Synced) -> None:
        with self.lock:
            self.received += 1
            if isinstance(item, Change):
                self.texts.append(item.to_json().decode())


class CheckerConsumer:
    """``client.watch`` into a StreamChecker."""

    def __init__(self, conf: cfg.ConfigOpts, checker: StreamChecker, pool: str) -> None:
        self.conf = conf
        self.checker = checker
        self.pool = pool
        self.recorder = Recorder()
        self.handle: Any = None
        self.resumes = 0
        self.relists = 0

    def _on_item(self, item: Change | Synced) -> None:
        self.recorder.note(item)
        self.checker.feed(item)

    def start(self) -> None:
        self.handle = client.watch(self.conf, None, self._on_item, pool=self.pool)

    def resume(self) -> None:
        """Stop, then watch again from the saved position (as a restarted consumer does)."""
        saved = self.handle.position
        self.handle.stop()
        self.handle = client.watch(self.conf, None, self._on_item, pool=self.pool, since=saved)
        self.resumes += 1
        self.relists = self.handle.relists

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()


class FaultyConsumer:
    """``client.subscribe`` with a callback that raises or stalls now and then."""

    def __init__(
        self, conf: cfg.ConfigOpts, pool: str, *, raise_every: int = 0, stall_every: int = 0
    ) -> None:
        self.conf = conf
        self.pool = pool
        self.raise_every = raise_every
        self.stall_every = stall_every
        self.stall_seconds = 3.0
        self.recorder = Recorder()
        self.raised = 0
        self.stalled = 0
        self.handle: Any = None
        self._lock = threading.Lock()

    def _on_change(self, change: Change) -> None:
        self.recorder.note(change)
        with self._lock:
            n = self.recorder.received
        if self.raise_every and n % self.raise_every == 0:
            with self._lock:
                self.raised += 1
            raise RuntimeError(f"soak consumer fails on change {n} on purpose")
        if self.stall_every and n % self.stall_every == 0:
            with self._lock:
                self.stalled += 1
            time.sleep(self.stall_seconds)

    def start(self) -> None:
        self.handle = client.subscribe(self.conf, None, self._on_change, pool=self.pool)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()


def digest(change: Change) -> int:
    """The xxh3 of a change's JSON form (its seq included, its epoch not)."""
    return xxhash.xxh3_64_intdigest(orjson.dumps(change.to_dict(), option=orjson.OPT_SORT_KEYS))


class WireRecorder:
    """``client.subscribe``: every change as sent, ``(stream, seq) → digest``.

    ``stream_of`` names the stream of an entity type (a fleet's partition).
    A ``(stream, seq)`` received again is a *repeat* when its content is the
    same and a *conflict* when it is not.
    """

    def __init__(self, conf: cfg.ConfigOpts, pool: str, stream_of: Any) -> None:
        self.conf = conf
        self.pool = pool
        self.stream_of = stream_of
        self.seen: dict[tuple[str, int], int] = {}
        self.received = 0
        self.repeats = 0
        self.conflicts: list[str] = []
        self.handle: Any = None
        self._lock = threading.Lock()

    def _on_change(self, change: Change) -> None:
        key = (self.stream_of(change.entity.type), change.seq)
        value = digest(change)
        with self._lock:
            self.received += 1
            known = self.seen.get(key)
            if known is None:
                self.seen[key] = value
            elif known == value:
                self.repeats += 1
            else:
                self.conflicts.append(f"{key[0]} seq {key[1]} ({change.entity.key})")

    def start(self) -> None:
        self.handle = client.subscribe(self.conf, None, self._on_change, pool=self.pool)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.stop()
