"""Pure diffing of a listing against a baseline.

A :class:`Baseline` maps ``(type, key)`` to the fingerprint last emitted for
it.  :func:`diff_snapshot` compares a full listing with it, :func:`diff_delta`
a delta listing (Nova's ``changes-since``).  Both are pure: they return the
changes and the new baseline and mutate nothing they are given.

The correctness rule they enforce (DESIGN.md rule 1, decided in
:mod:`synchronizer.deletes`): a delete is inferred only from a *complete*
listing or an explicit delete in a delta.  An incomplete listing (a page
failed, a timeout) yields no deletes and leaves the baseline exactly as it
was::

    >>> from synchronizer.model import Entity
    >>> result = diff_snapshot({}, [Entity("t", "k")], complete=True, now="2026-01-01")
    >>> [str(c.action) for c in result.changes]
    ['create']
    >>> result.baseline[("t", "k")] == result.changes[0].fingerprint
    True
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from synchronizer import deletes, fingerprint, timeutil
from synchronizer.model import Action, Change, Entity

BaselineKey = tuple[str, str]

_CREATE = Action.CREATE
_UPDATE = Action.UPDATE


class Baseline(Mapping[BaselineKey, int]):
    """An immutable mapping ``(type, key)`` → fingerprint.

    Stored as one ``key → fingerprint`` dict per type: a collector tracks
    up to millions of entities of one or a few types, and this saves the
    ``(type, key)`` tuple per entity (56 bytes) and its hashing in the diff
    loop.  Built by the diff functions; any mapping of ``(type, key)`` is
    accepted as input.
    """

    __slots__ = ("_by_type",)

    def __init__(self, items: Mapping[BaselineKey, int] | None = None) -> None:
        self._by_type: dict[str, dict[str, int]] = {}
        for (type_, key), fp in (items or {}).items():
            self._by_type.setdefault(type_, {})[key] = fp

    @classmethod
    def of(cls, baseline: Mapping[BaselineKey, int]) -> Baseline:
        """``baseline`` itself if it is a Baseline, else a Baseline of its items."""
        return baseline if isinstance(baseline, Baseline) else cls(baseline)

    @classmethod
    def of_types(cls, by_type: dict[str, dict[str, int]]) -> Baseline:
        """A Baseline of ``type → key → fingerprint`` (taken, not copied)."""
        return cls._wrap({t: keys for t, keys in by_type.items() if keys})

    @classmethod
    def _wrap(cls, by_type: dict[str, dict[str, int]]) -> Baseline:
        new = cls()
        new._by_type = by_type
        return new

    def __getitem__(self, item: BaselineKey) -> int:
        type_, key = item
        return self._by_type[type_][key]

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        return item[1] in self._by_type.get(item[0], ())

    def __iter__(self) -> Iterator[BaselineKey]:
        for type_, keys in self._by_type.items():
            for key in keys:
                yield (type_, key)

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_type.values())

    def __repr__(self) -> str:
        return f"Baseline({len(self)} entities)"

    def copy_by_type(self) -> dict[str, dict[str, int]]:
        return {type_: dict(keys) for type_, keys in self._by_type.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class DiffResult:
    """The changes a listing implies and the baseline after applying them.

    ``duplicates``: records of a full listing that repeated a key listed
    before (such a listing counts as incomplete, see :func:`diff_snapshot`).
    """

    changes: list[Change]
    baseline: Baseline
    listed: int
    duplicates: int = 0


def _upserts(
    old: dict[str, dict[str, int]],
    entities: Iterable[Entity],
    volatile: Collection[str],
    seen: dict[str, dict[str, int]],
) -> tuple[list[Change], int, set[BaselineKey]]:
    """Creates and updates of ``entities`` against ``old``; fills ``seen``.

    The hot loop of every poll: one fingerprint, one store and one lookup
    per entity, with the per-type dicts looked up only when the type changes.
    """
    changes: list[Change] = []
    created: set[BaselineKey] = set()
    fp_of = fingerprint.of
    listed = 0
    last_type: str | None = None
    seen_t: dict[str, int] = {}
    old_t: dict[str, int] = {}
    for entity in entities:
        listed += 1
        type_ = entity.type
        if type_ != last_type:
            last_type = type_
            seen_t = seen.setdefault(type_, {})
            old_t = old.get(type_, {})
        key = entity.key
        fp = fp_of(entity, volatile)
        seen_t[key] = fp
        was = old_t.get(key)
        if was is None:
            created.add((type_, key))
            changes.append(Change(_CREATE, entity, fp))
        elif was != fp:
            changes.append(Change(_UPDATE, entity, fp))
    return changes, listed, created


def diff_snapshot(
    baseline: Mapping[BaselineKey, int],
    entities: Iterable[Entity],
    *,
    complete: bool | Callable[[], bool],
    now: str | Callable[[], str] | None = None,
    volatile: Collection[str] = (),
    kept: Collection[BaselineKey] | Callable[[], Collection[BaselineKey]] = (),
    hold: deletes.Hold | None = None,
) -> DiffResult:
    """Diff a full listing against ``baseline``.

    When ``complete`` is true, keys in the baseline that the listing lacks
    become deletes observed at ``now`` (:func:`synchronizer.deletes.unlisted`)
    and the new baseline is exactly the listing.  When false, the
    creates/updates seen are still returned (they are true, if partial), no
    deletes are, and the returned baseline is ``baseline`` unchanged, so the
    next good cycle still produces the true delta; the dispatcher's ledger
    drops whatever it repeats.

    ``complete`` and ``now`` may be callables, asked once ``entities`` is
    exhausted: a listing can then be streamed (diffed as its pages arrive,
    never held whole in memory) and still say at its end whether it was
    complete, and when it ended (the time its deletes are known by).
    ``now`` is asked only when something is gone.  Given a string ``now``,
    equal inputs give equal results.  Without ``now``, a diff that deletes
    reads the clock (deprecated: a DeprecationWarning says so).

    A listing that names some key twice is inconsistent (its page walk
    shifted, see :mod:`synchronizer.deletes`): it is treated as incomplete,
    and ``duplicates`` says how many records repeated a key.  ``kept`` (or
    a callable asked at the end) are keys the listing named but could not
    convert; they and the deletes ``hold`` holds back keep their old
    fingerprints in the new baseline and are not deleted
    (:func:`synchronizer.deletes.unlisted`).
    """
    base = Baseline.of(baseline)
    seen: dict[str, dict[str, int]] = {}
    changes, listed, created = _upserts(base._by_type, entities, volatile, seen)
    if callable(complete):
        complete = complete()
    repeated = deletes.duplicates(listed, seen)
    if not complete or repeated:
        return DiffResult(changes, base, listed, repeated)
    changes += deletes.unlisted(
        base._by_type,
        seen,
        created,
        _clock if now is None else now,
        kept=kept() if callable(kept) else kept,
        hold=hold,
    )
    return DiffResult(changes, Baseline._wrap(seen), listed)


def _clock() -> str:
    # diff_snapshot -> deletes.unlisted -> here: warn the caller of diff_snapshot.
    warnings.warn(
        "diff_snapshot() without now= stamps its deletes with the clock; "
        "pass the time the listing ended",
        DeprecationWarning,
        stacklevel=4,
    )
    return timeutil.now()


def diff_delta(
    baseline: Mapping[BaselineKey, int],
    entities: Iterable[Entity],
    deleted: Iterable[Entity],
    *,
    volatile: Collection[str] = (),
) -> DiffResult:
    """Apply a delta listing: changed entities and explicitly deleted ones.

    Entities absent from a delta listing are unchanged, never deleted; a
    reported delete deletes what the baseline holds
    (:func:`synchronizer.deletes.reported`).
    """
    base = Baseline.of(baseline)
    new = base.copy_by_type()
    changes, listed, _ = _upserts(base._by_type, entities, volatile, new)
    changes += deletes.reported(new, deleted)
    return DiffResult(changes, Baseline._wrap(new), listed)
