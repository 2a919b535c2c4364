"""The ledger's entry codec: a told change ↔ one compact ``bytes`` entry.

The ledger holds every live entity of the cloud (up to millions), so each
is kept as one ``bytes`` object rather than a graph of Python objects (a
``Change``, an ``Entity``, its properties dict and strings cost about
1.8 kB per Nova instance).  An entry is a fixed header (fingerprint,
sequence number, action and flags, observation time) followed by the
entity's content, marshalled and compressed (zstd) with a per-type
dictionary (see :class:`_Codec`): a Nova instance's content takes about 75
bytes this way.  The delivery rules read only the header (:class:`Head`);
the content is decoded for deletes (which carry the last state) and for
the view, a few microseconds per entity.  A change holding a value marshal
cannot keep (an instance of some class), or a header field out of range
(a plugin's own fingerprint), is kept as the ``Change`` object itself.
Tombstones keep only the header.

Threading: not thread-safe; the ledger's caller locks.
"""

from __future__ import annotations

import contextlib
import gc
import marshal
import struct
from collections.abc import Callable, Iterable, Iterator

import zstandard

from synchronizer.model import Action, Change, Entity, Ref, Relation, Source


class Stored:
    """An entry a durable store read back: the header now, the change when asked.

    The delivery rules read only the header (:class:`Head`), so a store that
    keeps changes as documents (:mod:`synchronizer.dispatch.durable`) hands
    the ledger this, and the document is parsed only for what needs the
    content (a delete's last state, a retime, the view).
    """

    __slots__ = ("_load", "action", "final_state_unknown", "fingerprint", "seq", "timestamp")

    def __init__(
        self,
        fingerprint: int,
        seq: int,
        action: Action,
        timestamp: str,
        final_state_unknown: bool,
        load: Callable[[], Change],
    ) -> None:
        self.fingerprint, self.seq, self.action = fingerprint, seq, action
        self.timestamp, self.final_state_unknown = timestamp, final_state_unknown
        self._load = load

    def change(self) -> Change:
        return self._load()


Entry = bytes | Change | Stored

# Entry header: fingerprint, seq, flags, length of the timestamp that follows.
_HEAD = struct.Struct("<QQBB")
_FLAGS_AT = 16
_ACTIONS = (Action.CREATE, Action.UPDATE, Action.DELETE)
_ACTION_BITS = {action: i for i, action in enumerate(_ACTIONS)}
_ACTION_MASK = 0b11
_DELETED = _ACTION_BITS[Action.DELETE]
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
        fields: tuple[object, ...] = (
            entity.state,
            entity.project,
            (parent.type, parent.key) if parent is not None else None,
            tuple((r.relation, r.type, r.key) for r in entity.relations),
            (source.kind, source.plugin) if source is not None else None,
            entity.properties,
        )
        if entity.cloud is not None:  # a seventh field, only for a named cloud's entities
            fields = (*fields, entity.cloud)
        body = marshal.dumps(fields)
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
        fields = marshal.loads(body)  # noqa: S302
        if len(fields) == 6:
            state, project, parent, relations, source, properties = fields
            cloud = None
        else:
            state, project, parent, relations, source, properties, cloud = fields
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
            type_,
            key,
            state,
            project,
            ref,
            relations,
            properties,
            timestamp,
            self._source(source),
            cloud,
        )

    def _source(self, pair: tuple[str, str] | None) -> Source | None:
        if pair is None:
            return None
        source = self._sources.get(pair)
        if source is None:
            source = self._sources[pair] = Source(*pair)
        return source


class Head:
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

    def __init__(self, entry: Entry) -> None:
        if isinstance(entry, Stored):
            self.fingerprint, self.seq = entry.fingerprint, entry.seq
            self.action, self.timestamp = entry.action, entry.timestamp
            self.final_state_unknown = entry.final_state_unknown
            self.flags, self.body = -1, b""
            return
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


class EntryCodec:
    """Told changes ↔ entries (see the module docstring for the format).

    Invariant: ``decode(type, key, encode(change))`` equals ``change`` (with
    ``content=False``: its header only, the entity reduced to type, key and
    time).  The per-type dictionaries live here, so entries decode only with
    the codec that encoded them.
    """

    def __init__(self) -> None:
        self._content = _Codec()

    def encode(self, change: Change, *, content: bool = True) -> Entry:
        """The entry of a told change: compact bytes, or the change itself if it must."""
        try:
            flags, body = self._content.encode(change.entity) if content else (0, b"")
            return _pack(change, flags, body)
        except (ValueError, OverflowError, struct.error):
            # A value marshal cannot keep (an object of some class), or a header
            # field out of range (a plugin's own fingerprint): keep the object.
            return change

    def decode(
        self,
        type_: str,
        key: str,
        entry: Entry,
        refs: dict[tuple[str, str], Ref] | None = None,
        action: Action | None = None,
    ) -> Change:
        """The change an entry holds; with ``action``, carrying that action instead."""
        if isinstance(entry, Stored):
            entry = entry.change()
        if isinstance(entry, Change):
            return entry if action is None else entry.replace(action=action)
        fp, seq, flags, n = _HEAD.unpack_from(entry)
        end = _HEAD.size + n
        timestamp = entry[_HEAD.size : end].decode("ascii")
        entity = self._content.decode(type_, key, timestamp, flags, entry[end:], refs)
        told = _ACTIONS[flags & _ACTION_MASK] if action is None else action
        return Change(told, entity, fp, bool(flags & _FINAL_STATE_UNKNOWN), seq)

    def retime(self, type_: str, key: str, entry: Entry, head: Head, timestamp: str) -> Entry:
        """The same entry observed at ``timestamp`` instead (only the header changes)."""
        if isinstance(entry, Stored):
            entry = entry.change()
        if isinstance(entry, bytes):
            if timestamp.isascii() and len(timestamp) <= 255:
                stamp = timestamp.encode("ascii")
                packed = _HEAD.pack(head.fingerprint, head.seq, head.flags, len(stamp))
                return packed + stamp + head.body
            entry = self.decode(type_, key, entry)
        return entry.replace(entity=entry.entity.replace(timestamp=timestamp))

    def live(
        self,
        type_: str,
        items: Iterable[tuple[str, Entry]],
        refs: dict[tuple[str, str], Ref],
        action: Action | None = None,
    ) -> Iterator[Change]:
        """The changes of the entries that are not tombstones (the view's hot loop)."""
        for key, entry in items:
            if type(entry) is bytes:
                if entry[_FLAGS_AT] & _ACTION_MASK != _DELETED:
                    yield self.decode(type_, key, entry, refs, action)
            elif entry.action is not Action.DELETE:
                yield self.decode(type_, key, entry, None, action)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many acyclic objects are built.

    Decoding a view of 100,000 entities (and queueing it) would otherwise
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
