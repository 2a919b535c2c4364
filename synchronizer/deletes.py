"""Delete inference: the one place that decides an entity is gone.

A poll never sees a delete happen: it sees a key no longer listed.  So
deletes are inferred, here and nowhere else, in exactly three cases
(DESIGN.md rule 1):

1. **A complete full listing** (:func:`unlisted`): each key the worker's
   baseline holds and the listing lacks is deleted.  An *incomplete*
   listing (a page failed, a timeout) infers nothing: absence from part of
   a listing proves nothing.
2. **An explicit delete in a delta listing** (:func:`reported`: Nova's
   ``changes-since`` lists deleted servers): the key is deleted, whether
   the baseline holds it or not (an entity subscribers know only from a
   notification, whose delete notification was lost, is in no baseline;
   the ledger drops a delete of what it never told).  Absence from a delta
   listing never deletes: a delta lists only what changed.  (A delete
   *notification* needs no inference: it says so, and goes to the ledger
   as it is.)
3. **A resync's sweep** (:class:`Resync`): a restarted worker starts with
   an empty baseline, so its first complete listing cannot know what was
   deleted while it was down; the dispatcher's ledger knows what
   subscribers were told.  When that listing completes, every entity the
   worker's plugin owns (one of its types, or last stated by it) that the
   listing did not include and that was last observed before the listing
   began is deleted.  Entities observed after it began (a push during the
   listing) stay; a resync that did not complete sweeps nothing.

Three guards keep a listing that lost records without an error from
deleting what exists:

* **a key listed twice** makes the listing inconsistent (:func:`duplicates`):
  a page walk that shifted under inserts or reordering lists one record on
  two pages, and the record it displaced on neither; such a listing infers
  no deletes, as an incomplete one;
* **a record that names its entity but cannot be converted** (``kept``)
  is not gone: it keeps its last good state in the baseline;
* **a sudden mass delete** (:class:`MassDeleteHold`) is held until the
  next complete listing confirms it.

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

__all__ = ["MassDeleteHold", "Resync", "duplicates", "missing", "reported", "unlisted"]


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


def duplicates(listed: int, seen: ByType) -> int:
    """How many of ``listed`` records repeated a key already in ``seen`` (by type)."""
    return listed - sum(len(keys) for keys in seen.values())


Hold = Callable[[list[Key], int], Collection[Key]]


def unlisted(
    old: ByType,
    seen: dict[str, dict[str, int]],
    created: Collection[Key],
    now: str | Callable[[], str],
    *,
    kept: Iterable[Key] = (),
    hold: Hold | None = None,
) -> list[Change]:
    """Case 1: the deletes a *complete* listing ``seen`` implies, observed at ``now``.

    ``now`` may be a callable, asked once and only when some key is gone.
    ``kept`` are keys the listing named but could not convert, and
    ``hold(gone, tracked)`` returns the keys of ``gone`` to hold back (see
    :class:`MassDeleteHold`): both stay in ``seen`` (the caller's new
    baseline, which this fills in) with their fingerprints in ``old`` (a
    kept key ``old`` lacks gets 0, a state not known), and are not deleted.
    """
    added: list[Key] = []
    for type_, key in kept:
        fp = old.get(type_, {}).get(key)
        if fp is None:
            # Not in ``old`` (a worker that started empty): tracked from now on
            # with an unknown state (0), so that its later absence is a delete
            # and its first good record a change.
            fp = 0
            if key not in seen.get(type_, {}):
                added.append((type_, key))
        seen.setdefault(type_, {}).setdefault(key, fp)
    gone = list(missing(old, seen, [*created, *added] if added else created))
    if hold is not None:  # asked of every complete listing: it also settles what it held
        held = hold(gone, sum(len(keys) for keys in old.values()))
        if held:
            for type_, key in held:
                seen.setdefault(type_, {})[key] = old[type_][key]
            gone = [k for k in gone if k not in held]
    if not gone:
        return []
    stamp = now() if callable(now) else now
    return [
        Change(Action.DELETE, Entity(type_, key, timestamp=stamp), inferred=True)
        for type_, key in gone
    ]


def reported(known: dict[str, dict[str, int]], deleted: Iterable[Entity]) -> list[Change]:
    """Case 2: the deletes a delta listing reports, each removed from ``known``.

    ``known`` is the caller's new baseline, by type.  A reported key it
    lacks is a delete all the same: the service says the entity is gone,
    and subscribers may know it from a notification alone.  (A delete of a
    key already gone, listed again by the next delta's overlap, is dropped
    by the ledger as a repeat.)
    """
    changes = []
    for entity in deleted:
        keys = known.get(entity.type)
        if keys is not None:
            keys.pop(entity.key, None)
        changes.append(Change(Action.DELETE, entity))
    return changes


@dataclasses.dataclass
class MassDeleteHold:
    """Holds back one listing's deletes when they are too many at once.

    As Octavia's failover threshold does for amphorae: a complete listing
    that would delete more than ``threshold`` of the plugin's ``tracked``
    entities (and more than one) is suspicious, since a listing cut short
    without an error (a first page without its next link) looks exactly
    so.  Its deletes are held: their keys stay in the baseline, and the next
    complete listing decides (:meth:`screen` again): a held key it lacks
    again is deleted (``confirmed``), one it lists is not (``withdrawn``).
    Deletes the service reports (a delta listing, a notification) never
    pass here.  ``threshold`` 1 holds nothing.  Threading: one poll loop.
    """

    threshold: float
    held: frozenset[Key] = frozenset()
    confirmed: int = 0
    withdrawn: int = 0

    def screen(self, gone: list[Key], tracked: int) -> frozenset[Key]:
        """Of the keys a complete listing found ``gone``, those to hold back now."""
        previous = self.held
        fresh = [k for k in gone if k not in previous]
        self.confirmed = len(gone) - len(fresh)
        self.withdrawn = len(previous) - self.confirmed
        self.held = frozenset(fresh) if self.suspicious(len(fresh), tracked) else frozenset()
        return self.held

    __call__ = screen

    def suspicious(self, deleting: int, tracked: int) -> bool:
        """Whether deleting ``deleting`` of ``tracked`` entities at once is too many."""
        return deleting > 1 and deleting > self.threshold * tracked


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
    #: The plugin's cloud: it owns that cloud's entities only (None: those of no cloud).
    cloud: str | None = None

    def note(self, entity: Entity) -> None:
        """The resync listed ``entity``: it is not gone."""
        self.seen.add((entity.type, entity.key))

    def owns(self, entity: Entity) -> bool:
        """Whether ``entity`` is the plugin's: of its cloud, and one of its types or
        last stated by it (another cloud's entities of the same types are not)."""
        if entity.cloud != self.cloud:
            return False
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
