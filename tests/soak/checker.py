"""The soak's judges: the change stream as a consumer sees it, and the rebuilt world.

:class:`StreamChecker` is fed every item a consumer receives (``snapshot``
items, the ``synced`` marker, then live changes) and rebuilds the world
from them, counting what must never happen:

* a **duplicate**: a create or update whose fingerprint equals the last one
  delivered for its key (it told nothing new);
* an **older state**: a state whose revision (see :func:`truth.revision`) is
  below one already delivered for its key;
* a **false delete**: a delete received while the entity surely existed in
  the cloud (:meth:`truth.Truth.alive_at`);
* a **seq backwards**: a live change whose ``seq`` is not above the last one
  delivered of its stream (one stream per daemon; per partition in a fleet,
  ``stream_of``).

:func:`compare_world` then compares the rebuilt world with a reference
listing and with the cloud's keys: missing, phantom and wrong entities::

    checker = StreamChecker(truth, volatile={"nova.instance": frozenset()})
    for item in items:
        checker.feed(item, received_at=time.time())
    report = compare_world(checker.world(), reference, truth.current())
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from synchronizer import fingerprint
from synchronizer.model import Action, Change, Entity, Synced
from tests.soak.truth import Key, Truth, revision

#: How many offending examples a report keeps per kind.
EXAMPLES = 5


@dataclasses.dataclass
class StreamFindings:
    """Counts (and a few examples) of what the stream must not contain."""

    changes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    duplicates: int = 0
    older: int = 0
    false_deletes: int = 0
    backwards: int = 0
    examples: dict[str, list[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )

    def note(self, what: str, text: str) -> None:
        if len(self.examples[what]) < EXAMPLES:
            self.examples[what].append(text)


class StreamChecker:
    """Rebuilds the world from one consumer's items and judges the stream.

    Threading: ``feed`` may be called from any thread (it serialises).
    """

    def __init__(
        self,
        truth: Truth,
        volatile: Mapping[str, frozenset[str]],
        clock: Callable[[], float] = time.time,
        stream_of: Callable[[str], str] = lambda etype: "",
    ) -> None:
        self.truth = truth
        self.stream_of = stream_of
        self._last_seq: dict[str, int] = {}
        self.volatile = dict(volatile)
        self.clock = clock
        self.findings = StreamFindings()
        self.synced = threading.Event()
        self._lock = threading.Lock()
        self._world: dict[Key, Entity] = {}
        self._last_fp: dict[Key, int] = {}
        self._max_rev: dict[Key, int] = {}
        self._told: dict[Key, str] = {}  # the last item of each key, for a report
        self.last_item_at = 0.0

    def feed(self, item: Change | Synced, received_at: float | None = None) -> None:
        """Take one item as the consumer received it."""
        when = self.clock() if received_at is None else received_at
        with self._lock:
            self.last_item_at = when
            if isinstance(item, Synced):
                self.synced.set()
                return
            self.findings.changes[str(item.action)] += 1
            key = (item.entity.type, item.entity.key)
            self._told[key] = f"{item.action} seq {item.seq} at {when:.1f}"
            if item.action != Action.SNAPSHOT and item.seq:  # 0: never dispatched
                self._order(item)
            if item.action == Action.DELETE:
                self._delete(key, item, when)
            else:
                self._state(key, item)

    def _order(self, item: Change) -> None:
        stream = self.stream_of(item.entity.type)
        last = self._last_seq.get(stream, 0)
        if item.seq <= last:
            self.findings.backwards += 1
            self.findings.note("backwards", f"stream {stream!r}: seq {item.seq} after {last}")
        self._last_seq[stream] = max(last, item.seq)

    def _delete(self, key: Key, item: Change, when: float) -> None:
        if self.truth.alive_at(key, when):
            self.findings.false_deletes += 1
            self.findings.note("false_delete", f"{key} seq {item.seq}")
        self._world.pop(key, None)
        self._last_fp.pop(key, None)

    def _state(self, key: Key, item: Change) -> None:
        entity = item.entity
        fp = fingerprint.of(entity, self.volatile.get(entity.type, frozenset()))
        if item.action != Action.SNAPSHOT and self._last_fp.get(key) == fp:
            self.findings.duplicates += 1
            self.findings.note("duplicate", f"{key} seq {item.seq} state {entity.state}")
        rev = revision(entity.type, entity.properties)
        if rev is not None:
            highest = self._max_rev.get(key, -1)
            if rev < highest:
                self.findings.older += 1
                self.findings.note("older", f"{key} seq {item.seq}: rev {rev} after rev {highest}")
            self._max_rev[key] = max(rev, highest)
        self._world[key] = entity
        self._last_fp[key] = fp

    def last_told(self, key: Key) -> str | None:
        """The last item about a key (action, seq, when received), for a report."""
        with self._lock:
            return self._told.get(key)

    def world(self) -> dict[Key, Entity]:
        """The rebuilt world: every entity the consumer was told exists."""
        with self._lock:
            return dict(self._world)


@dataclasses.dataclass
class WorldReport:
    """How a rebuilt world differs from the reference and the truth."""

    missing: list[Key]
    phantom: list[Key]
    wrong: list[Key]
    reference_vs_truth: list[Key]
    compared: int

    @property
    def ok(self) -> bool:
        return not (self.missing or self.phantom or self.wrong or self.reference_vs_truth)


def compare_world(
    world: Mapping[Key, Entity],
    reference: Mapping[Key, Entity],
    truth: Mapping[str, set[str]],
    volatile: Mapping[str, frozenset[str]],
) -> WorldReport:
    """Missing (in the truth, not rebuilt), phantom (rebuilt, not in the truth) and
    wrong (fingerprint unlike the reference listing's) entities; and the keys on
    which the reference listing itself disagrees with the truth."""
    truth_keys = {(etype, key) for etype, keys in truth.items() for key in keys}
    wrong = [
        k
        for k in sorted(truth_keys & world.keys() & reference.keys())
        if _fp(world[k], volatile) != _fp(reference[k], volatile)
    ]
    return WorldReport(
        missing=sorted(truth_keys - world.keys()),
        phantom=sorted(world.keys() - truth_keys),
        wrong=wrong,
        reference_vs_truth=sorted(truth_keys ^ reference.keys()),
        compared=len(truth_keys),
    )


def _fp(entity: Entity, volatile: Mapping[str, frozenset[str]]) -> int:
    return fingerprint.of(entity, volatile.get(entity.type, frozenset()))


def describe_difference(a: Entity, b: Entity) -> dict[str, Any]:
    """The fields in which two states of one entity differ (for a report)."""
    da, db = a.to_dict(), b.to_dict()
    out: dict[str, Any] = {}
    for field in ("state", "project", "parent", "relations"):
        if da.get(field) != db.get(field):
            out[field] = (da.get(field), db.get(field))
    pa, pb = da.get("properties") or {}, db.get("properties") or {}
    for name in sorted(set(pa) | set(pb)):
        if pa.get(name) != pb.get(name):
            out[f"properties.{name}"] = (pa.get(name), pb.get(name))
    return out
