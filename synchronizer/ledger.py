"""The ledger: what subscribers were last told about each entity.

The ledger maps ``(type, key)`` to the last change delivered for it and is
both the dispatcher's filter and the daemon's current view (``get_all``).
:meth:`Ledger.admit` applies the delivery rules of DESIGN.md:

* a change that repeats what was told (same fingerprint) is dropped, but
  its observation time still advances the entity's clock;
* a state older than the newest already seen for the key is dropped;
* a delete of something never told (or already deleted) is dropped; a
  delivered delete carries the last known state;
* after a delete, a *polled* create/update of the same key is a stale read
  (OpenStack never reuses ids) and is dropped until the tombstone expires;
* the action is rewritten to what the subscribers know: ``create`` when
  they never saw the key (or saw it deleted), ``update`` otherwise.

Threading: not thread-safe; the dispatcher calls it under its own lock.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator

from synchronizer.entity import Action, Change, Entity

LedgerKey = tuple[str, str]


class Ledger:
    """``(type, key)`` → last delivered change, plus tombstones of deletes."""

    def __init__(self, tombstone_ttl: float = 3600.0) -> None:
        self._entries: dict[LedgerKey, Change] = {}
        self._tombstones: dict[LedgerKey, float] = {}
        self.tombstone_ttl = tombstone_ttl

    def __len__(self) -> int:
        return len(self._entries) - len(self._tombstones)

    def get(self, type_: str, key: str) -> Change | None:
        """The last delivered change of an entity (a delete for tombstones)."""
        return self._entries.get((type_, key))

    def admit(self, change: Change, seq: int = 0) -> Change | None:
        """Return the change to deliver (action rewritten, ``seq`` set), or None."""
        k = (change.entity.type, change.entity.key)
        prev = self._entries.get(k)
        if prev is not None and change.entity.timestamp < prev.entity.timestamp:
            return None
        if change.action is Action.DELETE:
            return self._admit_delete(k, change, prev, seq)
        return self._admit_upsert(k, change, prev, seq)

    def _admit_delete(
        self, k: LedgerKey, change: Change, prev: Change | None, seq: int
    ) -> Change | None:
        if prev is None or prev.action is Action.DELETE:
            if prev is not None:
                self._advance(k, prev, change.entity.timestamp)
            return None
        entity = change.entity
        if entity.state is None or change.final_state_unknown:
            # Carry the last known state, observed at the time of the delete.
            entity = prev.entity.replace(timestamp=entity.timestamp, source=entity.source)
        told = change.replace(entity=entity, fingerprint=0, seq=seq)
        self._entries[k] = told
        self._tombstones[k] = time.monotonic()
        return told

    def _admit_upsert(
        self, k: LedgerKey, change: Change, prev: Change | None, seq: int
    ) -> Change | None:
        if prev is not None and prev.action is not Action.DELETE:
            if prev.fingerprint == change.fingerprint:
                self._advance(k, prev, change.entity.timestamp)
                return None
            told = change.replace(action=Action.UPDATE, seq=seq)
        else:
            if prev is not None and self._is_stale_read(k, change):
                return None
            self._tombstones.pop(k, None)
            told = change.replace(action=Action.CREATE, seq=seq)
        self._entries[k] = told
        return told

    def _is_stale_read(self, k: LedgerKey, change: Change) -> bool:
        deleted_at = self._tombstones.get(k)
        if deleted_at is None:
            return False
        if time.monotonic() - deleted_at > self.tombstone_ttl:
            return False
        source = change.entity.source
        return source is None or source.kind == "poll"

    def _advance(self, k: LedgerKey, prev: Change, timestamp: str) -> None:
        if timestamp > prev.entity.timestamp:
            self._entries[k] = prev.replace(entity=prev.entity.replace(timestamp=timestamp))

    def current(self, types: Collection[str] | None = None) -> Iterator[Change]:
        """Every live entity's last change, optionally of some types only."""
        for change in self._entries.values():
            if change.action is Action.DELETE:
                continue
            if types is None or change.entity.type in types:
                yield change

    def entities(self, types: Collection[str] | None = None) -> list[Entity]:
        return [c.entity for c in self.current(types)]

    def prune(self) -> int:
        """Forget tombstones older than the TTL; return how many went."""
        cutoff = time.monotonic() - self.tombstone_ttl
        expired = [k for k, at in self._tombstones.items() if at < cutoff]
        for k in expired:
            del self._tombstones[k]
            del self._entries[k]
        return len(expired)
