"""Delete inference: the one place that decides an entity is gone.

A poll never sees a delete happen: it sees a key no longer listed.  So
deletes are inferred, here and nowhere else, in exactly three cases
(DESIGN.md rule 1):

1. **A complete full listing** (:func:`unlisted`): each key the worker's
   baseline holds and the listing lacks is deleted.  An *incomplete*
   listing (a page failed, a timeout) infers nothing: absence from part of
   a listing proves nothing.
2. **An explicit delete in a delta listing** (:func:`reported`: Nova's
   ``changes-since`` lists deleted servers): the key is deleted if the
   baseline holds it.  Absence from a delta listing never deletes: a delta
   lists only what changed.  (A delete *notification* needs no inference:
   it says so, and goes to the ledger as it is.)
3. **A resync's sweep** (:class:`Resync`): a restarted worker starts with
   an empty baseline, so its first complete listing cannot know what was
   deleted while it was down; the dispatcher's ledger knows what
   subscribers were told.  When that listing completes, every entity the
   worker's plugin owns (one of its types, or last stated by it) that the
   listing did not include and that was last observed before the listing
   began is deleted.  Entities observed after it began (a push during the
   listing) stay; a resync that did not complete sweeps nothing.

Every inferred delete is observed at ``now``, which the caller passes in:
the time the listing that found the key gone *ended*, the earliest time it
is known gone (a key missing from a page fetched late in the listing may
have gone after the listing began; a delete stamped at the start would let
a notification older than the real delete, but newer than the start,
resurrect the entity).  So nothing here reads a clock or does I/O, the
same input always gives the same deletes, and nothing mutates its input
except where a docstring says so.

**final_state_unknown** (client-go's ``DeletedFinalStateUnknown``): the
sweep's deletes were not seen happen (the worker was down), so nobody knows
the entity's state when it went; such a delete is marked
``final_state_unknown`` and carries the last state subscribers were told
(the ledger fills it in), which may be stale.  The deletes of cases 1 and 2
carry only type, key and time; the ledger fills in the last known state
too, unmarked, since a worker that was watching saw the key go.

**Inferred, not reported**: the deletes of cases 1 and 3 are conclusions
from absence, and a listing can lose records without any error (a page
walk that shifts under inserts, a page that comes back without its next
link), so they are marked ``inferred``: when a later complete listing lists
the key again, that is evidence the delete was wrong, and the ledger lets
the entity come back (as a create).  Only a delete the service reported (a
delta listing's deleted record, a delete notification) is final.

    >>> [c.key for c in unlisted({"t": {"a": 1, "b": 2}}, {"t": {"a": 1}}, set(), "2026-01-01")]
    ['b']
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from synchronizer.model import Action, Change, Entity, Source

Key = tuple[str, str]
ByType = Mapping[str, Mapping[str, int]]

__all__ = ["Resync", "missing", "reported", "unlisted"]


def missing(old: ByType, seen: ByType, created: Collection[Key]) -> Iterator[Key]:
    """Keys of ``old`` (by type) that a listing, ``seen`` (by type), lacks.

    ``created`` are the keys of ``seen`` that ``old`` lacks: a type's set
    difference is computed only when counting says some key is missing
    (seen - created < old), which a steady-state poll never does.
    """
    new_by_type = collections.Counter(type_ for type_, _ in created)
    for type_, old_t in old.items():
        seen_t = seen.get(type_, {})
        if len(seen_t) - new_by_type[type_] == len(old_t):
            continue
        for key in old_t.keys() - seen_t.keys():
            yield (type_, key)


def unlisted(
    old: ByType, seen: ByType, created: Collection[Key], now: str | Callable[[], str]
) -> list[Change]:
    """Case 1: the deletes a *complete* listing ``seen`` implies, observed at ``now``.

    ``now`` may be a callable, asked once and only when some key is gone.
    """
    gone = list(missing(old, seen, created))
    if not gone:
        return []
    stamp = now() if callable(now) else now
    return [
        Change(Action.DELETE, Entity(type_, key, timestamp=stamp), inferred=True)
        for type_, key in gone
    ]


def reported(known: dict[str, dict[str, int]], deleted: Iterable[Entity]) -> list[Change]:
    """Case 2: the deletes a delta listing reports, of keys ``known`` holds.

    Each one is removed from ``known`` (the caller's new baseline, by type);
    a reported key ``known`` lacks (never listed, or already gone) is no
    delete.
    """
    changes = []
    for entity in deleted:
        keys = known.get(entity.type)
        if keys is not None and keys.pop(entity.key, None) is not None:
            changes.append(Change(Action.DELETE, entity))
    return changes


@dataclasses.dataclass
class Resync:
    """Case 3: one plugin's resync in progress (its worker's first complete listing).

    ``started`` is when the listing began (normalised UTC, as entity times
    are): what was last observed before it and not listed is gone.  The
    dispatcher notes every change the plugin sends while the resync runs
    (:meth:`note`), and sweeps its view when the listing completes
    (:meth:`sweep`).  Threading: none; the dispatcher calls it under its
    lock.
    """

    plugin: str
    types: frozenset[str]
    started: str
    seen: set[Key] = dataclasses.field(default_factory=set)

    def note(self, entity: Entity) -> None:
        """The resync listed ``entity``: it is not gone."""
        self.seen.add((entity.type, entity.key))

    def owns(self, entity: Entity) -> bool:
        """Whether ``entity`` is the plugin's: one of its types, or last stated by it."""
        source = entity.source
        return entity.type in self.types or (source is not None and source.plugin == self.plugin)

    def vanished(self, entity: Entity) -> bool:
        """Whether the completed resync found ``entity`` gone."""
        return (
            self.owns(entity)
            and (entity.type, entity.key) not in self.seen
            and entity.timestamp < self.started
        )

    def sweep(self, view: Iterable[Change], now: str) -> list[Change]:
        """The final-state-unknown deletes, observed at ``now``, of what ``view``
        holds and the completed resync found gone."""
        source = Source("poll", self.plugin)
        return [
            Change(
                Action.DELETE,
                c.entity.replace(timestamp=now, source=source),
                final_state_unknown=True,
                inferred=True,
            )
            for c in view
            if self.vanished(c.entity)
        ]
