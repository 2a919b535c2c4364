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

Memory: the ledger holds every live entity of the cloud (up to millions),
so each is kept as one ``bytes`` object rather than a graph of Python
objects (a ``Change``, an ``Entity``, its properties dict and strings cost
about 1.8 kB per Nova instance).  An entry is a fixed header (fingerprint,
sequence number, action and flags, observation time) followed by the
entity's content, marshalled and compressed (zstd) with a per-type
dictionary (see :class:`_Codec`): a Nova instance's content takes about 75
bytes this way.  The
filter reads only the header; the content is decoded for deletes (which
carry the last state) and for the view (:meth:`current`, ``get_all``, new
subscribers' snapshots), a few microseconds per entity.  An entity holding
a value marshal cannot keep (an instance of some class) is kept as its
``Change`` object.  Tombstones keep only the header.

Threading: not thread-safe; the dispatcher calls it under its own lock.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import os
import sqlite3
import struct
import time
from collections.abc import Collection, Iterator, MutableMapping
from typing import Any

import zstandard

from synchronizer.model import Action, Change, Entity, Ref, Relation, Source

LedgerKey = tuple[str, str]

# Entry header: fingerprint, seq, flags, length of the timestamp that follows.
_HEAD = struct.Struct("<QQBB")
_FLAGS_AT = 16
_ACTIONS = (Action.CREATE, Action.UPDATE, Action.DELETE)
_ACTION_BITS = {action: i for i, action in enumerate(_ACTIONS)}
_ACTION_MASK = 0b11
_FINAL_STATE_UNKNOWN = 0b100
_COMPRESSED = 0b1000
_HAS_BODY = 0b10000
_TRAINED = 0b100000  # compressed with the type's trained dictionary (not its first)
_LEVEL = 3
_TRAINING_SAMPLES = 1000
_DICT_SIZE = 16384


class _TypeCodec:
    """Compression of one entity type's content (see :class:`_Codec`)."""

    __slots__ = ("compressor", "decompressors", "samples")

    def __init__(self, first: bytes) -> None:
        # Until there are samples to train on, the first content is the dictionary.
        bootstrap = zstandard.ZstdCompressionDict(first, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        self.compressor = _compressor(bootstrap)
        self.decompressors = [_decompressor(bootstrap)]
        self.samples: list[bytes] | None = []

    def note(self, body: bytes) -> None:
        """Keep ``body`` as a sample; with enough of them, train the dictionary."""
        samples = self.samples
        if samples is None:
            return
        samples.append(body)
        if len(samples) < _TRAINING_SAMPLES:
            return
        self.samples = None
        try:
            trained = zstandard.train_dictionary(_DICT_SIZE, samples)
        except zstandard.ZstdError:
            return  # contents too uniform or too small to train on: keep the first
        compressor = _compressor(trained)
        now = sum(len(self.compressor.compress(b)) for b in samples)
        if sum(len(compressor.compress(b)) for b in samples) < now:
            self.compressor = compressor
            self.decompressors.append(_decompressor(trained))


def _compressor(zdict: zstandard.ZstdCompressionDict) -> zstandard.ZstdCompressor:
    params = zstandard.ZstdCompressionParameters.from_level(
        _LEVEL,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        write_content_size=1,
        write_checksum=0,
        write_dict_id=0,
    )
    return zstandard.ZstdCompressor(dict_data=zdict, compression_params=params)


def _decompressor(zdict: zstandard.ZstdCompressionDict) -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(dict_data=zdict, format=zstandard.FORMAT_ZSTD1_MAGICLESS)


class _Codec:
    """Entity content ↔ bytes: marshal, compressed with a per-type dictionary.

    marshal (not JSON) because it keeps every plain Python value as it was
    (tuples, non-string keys) and is the fastest to load back, which is what
    a new subscriber's snapshot waits on.  Entities of one type share their
    field names, most values' shapes and many values, so with a dictionary
    of the type the content compresses to little more than its unique ids.
    The dictionary starts as the content of the type's first entity and is
    trained (zstd's dictionary builder) on the first
    ``_TRAINING_SAMPLES`` contents once the type has that many, if that
    compresses those samples better: a Nova instance then takes about 75
    bytes and decodes in half a microsecond (zlib with the first entity as
    its dictionary: about 100 bytes and 2.5 µs).  Entries record which of
    the two dictionaries they used.
    """

    def __init__(self) -> None:
        self._types: dict[str, _TypeCodec] = {}
        self._sources: dict[tuple[str, str], Source] = {}

    def encode(self, entity: Entity) -> tuple[int, bytes]:
        """``(flags, body)``; raises ValueError for a value marshal cannot keep."""
        parent, source = entity.parent, entity.source
        body = marshal.dumps(
            (
                entity.state,
                entity.project,
                (parent.type, parent.key) if parent is not None else None,
                tuple((r.relation, r.type, r.key) for r in entity.relations),
                (source.kind, source.plugin) if source is not None else None,
                entity.properties,
            )
        )
        codec = self._types.get(entity.type)
        if codec is None:
            codec = self._types[entity.type] = _TypeCodec(body)
        elif codec.samples is not None:
            codec.note(body)
        generation = len(codec.decompressors) - 1
        packed = codec.compressor.compress(body)
        if len(packed) < len(body):
            return _HAS_BODY | _COMPRESSED | (_TRAINED if generation else 0), packed
        return _HAS_BODY, body

    def decode(
        self,
        type_: str,
        key: str,
        timestamp: str,
        flags: int,
        body: bytes,
        refs: dict[tuple[str, str], Ref] | None = None,
    ) -> Entity:
        """The entity of an entry; ``refs`` shares parents across one bulk decode."""
        if not flags & _HAS_BODY:
            return Entity(type_, key, timestamp=timestamp)
        if flags & _COMPRESSED:
            decompressors = self._types[type_].decompressors
            body = decompressors[1 if flags & _TRAINED else 0].decompress(body)
        # Bytes this process wrote itself, never input from outside.
        state, project, parent, relations, source, properties = marshal.loads(body)  # noqa: S302
        ref = None
        if parent is not None:
            ref = refs.get(parent) if refs is not None else None
            if ref is None:
                ref = Ref(*parent)
                if refs is not None:
                    refs[parent] = ref
        if len(relations) == 1:
            relations = (Relation(*relations[0]),)
        elif relations:
            relations = tuple(Relation(*r) for r in relations)
        return Entity(
            type_, key, state, project, ref, relations, properties, timestamp, self._source(source)
        )

    def _source(self, pair: tuple[str, str] | None) -> Source | None:
        if pair is None:
            return None
        source = self._sources.get(pair)
        if source is None:
            source = self._sources[pair] = Source(*pair)
        return source


class _Head:
    """The decoded header of one entry (what the delivery rules read)."""

    __slots__ = (
        "action",
        "body",
        "final_state_unknown",
        "fingerprint",
        "flags",
        "seq",
        "timestamp",
    )

    def __init__(self, entry: bytes | Change) -> None:
        if isinstance(entry, Change):
            self.fingerprint, self.seq = entry.fingerprint, entry.seq
            self.action, self.timestamp = entry.action, entry.entity.timestamp
            self.final_state_unknown = entry.final_state_unknown
            self.flags, self.body = -1, b""
            return
        self.fingerprint, self.seq, self.flags, n = _HEAD.unpack_from(entry)
        end = _HEAD.size + n
        self.timestamp = entry[_HEAD.size : end].decode("ascii")
        self.action = _ACTIONS[self.flags & _ACTION_MASK]
        self.final_state_unknown = bool(self.flags & _FINAL_STATE_UNKNOWN)
        self.body = entry[end:]


def _pack(change: Change, flags: int, body: bytes) -> bytes:
    stamp = change.entity.timestamp.encode("ascii")
    flags |= _ACTION_BITS[change.action]
    if change.final_state_unknown:
        flags |= _FINAL_STATE_UNKNOWN
    return _HEAD.pack(change.fingerprint, change.seq, flags, len(stamp)) + stamp + body


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are built.

    Building a view of 100,000 entities (and queueing it) would otherwise
    set off several full collections, each walking every object just made:
    it doubles what a new subscriber waits.  Refcounting still frees as
    usual; the collector resumes (if it was on) when the block ends.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


Entries = MutableMapping[str, "bytes | Change"]


class _FileEntries(MutableMapping[str, "bytes | Change"]):
    """One entity type's entries in the ledger file (see :class:`Ledger`).

    Entries kept as objects (values marshal cannot keep: rare) stay in
    memory beside the file.
    """

    def __init__(self, db: sqlite3.Connection, type_: str) -> None:
        self._db, self._type = db, type_
        self._objects: dict[str, Change] = {}

    def __getitem__(self, key: str) -> bytes | Change:
        entry = self.get(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def get(self, key: str, default: Any = None) -> Any:
        obj = self._objects.get(key)
        if obj is not None:
            return obj
        row = self._db.execute(_SELECT, (self._type, key)).fetchone()
        return default if row is None else row[0]

    def __setitem__(self, key: str, entry: bytes | Change) -> None:
        if isinstance(entry, bytes):
            self._db.execute(_UPSERT, (self._type, key, entry))
            self._objects.pop(key, None)
        else:
            self._db.execute(_DELETE, (self._type, key))
            self._objects[key] = entry

    def __delitem__(self, key: str) -> None:
        if self._objects.pop(key, None) is None and not self._delete(key):
            raise KeyError(key)

    def _delete(self, key: str) -> bool:
        return self._db.execute(_DELETE, (self._type, key)).rowcount > 0

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        (n,) = self._db.execute(_COUNT, (self._type,)).fetchone()
        return n + len(self._objects)

    def items(self) -> Iterator[tuple[str, bytes | Change]]:  # type: ignore[override]
        yield from list(self._objects.items())
        yield from self._db.execute(_SCAN, (self._type,))


_SELECT = "SELECT entry FROM entries WHERE type = ? AND key = ?"
_UPSERT = (
    "INSERT INTO entries (type, key, entry) VALUES (?, ?, ?)"
    " ON CONFLICT (type, key) DO UPDATE SET entry = excluded.entry"
)
_DELETE = "DELETE FROM entries WHERE type = ? AND key = ?"
_COUNT = "SELECT count(*) FROM entries WHERE type = ?"
_SCAN = "SELECT key, entry FROM entries WHERE type = ? ORDER BY rowid"


def _open_file(path: str) -> sqlite3.Connection:
    """The ledger file, emptied: what subscribers were told is per run."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # whatever was there (a past run's ledger, or not a database)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Nothing to recover after a crash (the file is emptied at start), so no
    # journal and no fsync: each write is a plain page update.
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    # rowid order is insertion order, as in the heap's dicts: an update keeps
    # its entity's place, a delete and re-create moves it to the end.
    db.execute(
        "CREATE TABLE entries (type TEXT NOT NULL, key TEXT NOT NULL, entry BLOB NOT NULL,"
        " UNIQUE (type, key))"
    )
    return db


class Ledger:
    """``(type, key)`` → last delivered change, plus tombstones of deletes.

    With ``path``, the entries live in that SQLite file instead of the
    heap (emptied when the ledger is made): the process's memory then no
    longer grows with the number of entities, for a few microseconds more
    per change and per entity of a view.  The tombstones' times stay in
    memory (one per recent delete).
    """

    def __init__(self, tombstone_ttl: float = 3600.0, path: str | None = None) -> None:
        self._db = _open_file(path) if path else None
        self._entries: dict[str, Entries] = {}
        self._tombstones: dict[LedgerKey, float] = {}
        self._count = 0
        self._codec = _Codec()
        self.tombstone_ttl = tombstone_ttl

    def _type_entries(self, type_: str) -> Entries:
        entries = self._entries.get(type_)
        if entries is None:
            entries = {} if self._db is None else _FileEntries(self._db, type_)
            self._entries[type_] = entries
        return entries

    def __len__(self) -> int:
        return self._count - len(self._tombstones)

    def get(self, type_: str, key: str) -> Change | None:
        """The last delivered change of an entity (a delete for tombstones)."""
        entry = self._entries.get(type_, {}).get(key)
        return None if entry is None else self._change(type_, key, entry)

    def admit(self, change: Change, seq: int = 0) -> Change | None:
        """Return the change to deliver (action rewritten, ``seq`` set), or None."""
        entity = change.entity
        entries = self._type_entries(entity.type)
        entry = entries.get(entity.key)
        prev = None if entry is None else _Head(entry)
        if prev is not None and entity.timestamp < prev.timestamp:
            return None
        if change.action is Action.DELETE:
            return self._admit_delete(entries, change, entry, prev, seq)
        return self._admit_upsert(entries, change, entry, prev, seq)

    def _admit_delete(
        self,
        entries: Entries,
        change: Change,
        entry: bytes | Change | None,
        prev: _Head | None,
        seq: int,
    ) -> Change | None:
        entity = change.entity
        if entry is None or prev is None:
            return None
        if prev.action is Action.DELETE:
            self._advance(entries, entity, entry, prev)
            return None
        if entity.state is None or change.final_state_unknown:
            # Carry the last known state, observed at the time of the delete.
            last = self._change(entity.type, entity.key, entry).entity
            entity = last.replace(timestamp=entity.timestamp, source=entity.source)
        told = Change(Action.DELETE, entity, 0, change.final_state_unknown, seq)
        entries[entity.key] = self._store(told, content=False)
        self._tombstones[(entity.type, entity.key)] = time.monotonic()
        return told

    def _admit_upsert(
        self,
        entries: Entries,
        change: Change,
        entry: bytes | Change | None,
        prev: _Head | None,
        seq: int,
    ) -> Change | None:
        entity = change.entity
        if entry is not None and prev is not None and prev.action is not Action.DELETE:
            if prev.fingerprint == change.fingerprint:
                self._advance(entries, entity, entry, prev)
                return None
            action = Action.UPDATE
        else:
            k = (entity.type, entity.key)
            if prev is not None and self._is_stale_read(k, change):
                return None
            if entry is None:
                self._count += 1
            self._tombstones.pop(k, None)
            action = Action.CREATE
        told = Change(action, entity, change.fingerprint, change.final_state_unknown, seq)
        entries[entity.key] = self._store(told)
        return told

    def _store(self, change: Change, *, content: bool = True) -> bytes | Change:
        """The entry of a told change: compact bytes, or the change itself if it must."""
        try:
            flags, body = self._codec.encode(change.entity) if content else (0, b"")
            return _pack(change, flags, body)
        except (ValueError, OverflowError, struct.error):
            # A value marshal cannot keep (an object of some class), or a header
            # field out of range (a plugin's own fingerprint): keep the object.
            return change

    def _is_stale_read(self, k: LedgerKey, change: Change) -> bool:
        deleted_at = self._tombstones.get(k)
        if deleted_at is None:
            return False
        if time.monotonic() - deleted_at > self.tombstone_ttl:
            return False
        source = change.entity.source
        return source is None or source.kind == "poll"

    def _advance(self, entries: Entries, seen: Entity, entry: bytes | Change, prev: _Head) -> None:
        """Move the entry's observation time to ``seen``'s, if later."""
        timestamp = seen.timestamp
        if timestamp <= prev.timestamp:
            return
        if isinstance(entry, bytes):
            if timestamp.isascii() and len(timestamp) <= 255:
                stamp = timestamp.encode("ascii")
                head = _HEAD.pack(prev.fingerprint, prev.seq, prev.flags, len(stamp))
                entries[seen.key] = head + stamp + prev.body
                return
            entry = self._change(seen.type, seen.key, entry)
        entries[seen.key] = entry.replace(entity=entry.entity.replace(timestamp=timestamp))

    def _change(
        self,
        type_: str,
        key: str,
        entry: bytes | Change,
        refs: dict[tuple[str, str], Ref] | None = None,
        action: Action | None = None,
    ) -> Change:
        if isinstance(entry, Change):
            return entry if action is None else entry.replace(action=action)
        fp, seq, flags, n = _HEAD.unpack_from(entry)
        end = _HEAD.size + n
        timestamp = entry[_HEAD.size : end].decode("ascii")
        entity = self._codec.decode(type_, key, timestamp, flags, entry[end:], refs)
        told = _ACTIONS[flags & _ACTION_MASK] if action is None else action
        return Change(told, entity, fp, bool(flags & _FINAL_STATE_UNKNOWN), seq)

    def current(
        self, types: Collection[str] | None = None, *, action: Action | None = None
    ) -> list[Change]:
        """Every live entity's last change, decoded, optionally of some types only.

        With ``action``, the changes carry that action instead (``snapshot``
        for a new subscriber), built so rather than copied afterwards.

        A few microseconds an entity.  Decoding allocates several objects per
        entity and makes no reference cycles, so the cyclic garbage collector
        is paused meanwhile: over a view of 100,000 entities it would
        otherwise run several full collections, doubling the time a new
        subscriber or ``get_all`` waits (refcounting still frees as usual).
        """
        with gc_paused():
            return list(self._live(types, action))

    def _live(self, types: Collection[str] | None, action: Action | None) -> Iterator[Change]:
        deleted = _ACTION_BITS[Action.DELETE]
        refs: dict[tuple[str, str], Ref] = {}
        for type_, entries in self._entries.items():
            if types is not None and type_ not in types:
                continue
            for key, entry in entries.items():
                if type(entry) is bytes:
                    if entry[_FLAGS_AT] & _ACTION_MASK != deleted:
                        yield self._change(type_, key, entry, refs, action)
                elif entry.action is not Action.DELETE:
                    yield self._change(type_, key, entry, None, action)

    def entities(self, types: Collection[str] | None = None) -> list[Entity]:
        return [c.entity for c in self.current(types)]

    def prune(self) -> int:
        """Forget tombstones older than the TTL; return how many went."""
        cutoff = time.monotonic() - self.tombstone_ttl
        expired = [k for k, at in self._tombstones.items() if at < cutoff]
        for type_, key in expired:
            del self._tombstones[(type_, key)]
            del self._entries[type_][key]
            self._count -= 1
        return len(expired)
