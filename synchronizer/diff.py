"""Pure diffing of a listing against a baseline.

A baseline maps ``(type, key)`` to the fingerprint last emitted for it.
:func:`diff_snapshot` compares a full listing with it, :func:`diff_delta` a
delta listing (Nova's ``changes-since``).  Both are pure: they return the
changes and the new baseline and mutate nothing they are given.

The correctness rule they enforce (DESIGN.md rule 1): a delete is inferred
only from a *complete* listing.  An incomplete listing (a page failed, a
timeout) yields no deletes and leaves the baseline exactly as it was::

    >>> from synchronizer.entity import Entity
    >>> result = diff_snapshot({}, [Entity("t", "k")], complete=True)
    >>> [str(c.action) for c in result.changes]
    ['create']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping

from synchronizer import fingerprint
from synchronizer.entity import Action, Change, Entity

BaselineKey = tuple[str, str]
Baseline = Mapping[BaselineKey, int]


@dataclasses.dataclass(frozen=True, slots=True)
class DiffResult:
    """The changes a listing implies and the baseline after applying them."""

    changes: list[Change]
    baseline: dict[BaselineKey, int]
    listed: int


def _upserts(
    baseline: Baseline,
    entities: Iterable[Entity],
    volatile: Collection[str],
) -> tuple[list[Change], dict[BaselineKey, int], int]:
    changes: list[Change] = []
    seen: dict[BaselineKey, int] = {}
    listed = 0
    for entity in entities:
        listed += 1
        fp = fingerprint.of(entity, volatile)
        key = (entity.type, entity.key)
        seen[key] = fp
        old = baseline.get(key)
        if old is None:
            changes.append(Change(Action.CREATE, entity, fp))
        elif old != fp:
            changes.append(Change(Action.UPDATE, entity, fp))
    return changes, seen, listed


def diff_snapshot(
    baseline: Baseline,
    entities: Iterable[Entity],
    *,
    complete: bool,
    volatile: Collection[str] = (),
    deleted_template: Mapping[BaselineKey, Entity] | None = None,
) -> DiffResult:
    """Diff a full listing against ``baseline``.

    When ``complete`` is true, keys in the baseline that the listing lacks
    become deletes and the new baseline is exactly the listing.  When false,
    the creates/updates seen are still returned (they are true, if partial),
    no deletes are, and the returned baseline is ``baseline`` unchanged (a
    copy), so the next good cycle still produces the true delta; the
    dispatcher's ledger drops whatever it repeats.
    """
    changes, seen, listed = _upserts(baseline, entities, volatile)
    if not complete:
        return DiffResult(changes, dict(baseline), listed)
    for key in baseline.keys() - seen.keys():
        entity = (deleted_template or {}).get(key) or Entity(key[0], key[1])
        changes.append(Change(Action.DELETE, entity))
    return DiffResult(changes, seen, listed)


def diff_delta(
    baseline: Baseline,
    entities: Iterable[Entity],
    deleted: Iterable[Entity],
    *,
    volatile: Collection[str] = (),
) -> DiffResult:
    """Apply a delta listing: changed entities and explicitly deleted ones.

    Entities absent from a delta listing are unchanged, never deleted.
    """
    changes, seen, listed = _upserts(baseline, entities, volatile)
    new = dict(baseline)
    new.update(seen)
    for entity in deleted:
        key = (entity.type, entity.key)
        if new.pop(key, None) is not None:
            changes.append(Change(Action.DELETE, entity))
    return DiffResult(changes, new, listed)
