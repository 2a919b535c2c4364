"""Fingerprints: xxh3 over the canonical bytes of an entity's content.

The fingerprint covers what a subscriber cares about: type, key, state,
project, parent, relations and properties, and the cloud of an entity that
has one (an entity without, the only kind before clouds, hashes the same
bytes as then).  It leaves out the volatile parts
(timestamp, action, source) and any property a plugin declares volatile
(e.g. Nagios' ``last_check``), so a poll that sees the same state as a
notification gives the same fingerprint.  Canonical bytes come from orjson
with sorted keys, so dict ordering and the process (unlike Python's salted
``hash()``) do not matter::

    >>> from synchronizer.model import Entity
    >>> a = Entity("t", "k", properties={"a": 1, "b": 2})
    >>> b = Entity("t", "k", properties={"b": 2, "a": 1})
    >>> of(a) == of(b)
    True

This is the innermost loop of every poll (one call per listed entity), so
it builds as few objects as it can: relations are sorted only when there
are two or more, and orjson's non-string-key mode (slower) is used only for
properties that need it, which gives the same bytes for string keys.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
import xxhash

from synchronizer.model import Entity

_SORTED = orjson.OPT_SORT_KEYS
_SORTED_ANY_KEYS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_dumps = orjson.dumps
_xxh3 = xxhash.xxh3_64_intdigest


def canonical_bytes(entity: Entity, volatile: Collection[str] = ()) -> bytes:
    """The bytes the fingerprint is computed over."""
    props: dict[str, Any] = entity.properties
    if volatile:
        props = {k: v for k, v in props.items() if k not in volatile}
    relations: Any = entity.relations
    if len(relations) == 1:
        r = relations[0]
        relations = ((r.relation, r.type, r.key),)
    elif relations:
        relations = sorted((r.relation, r.type, r.key) for r in relations)
    parent = entity.parent
    doc = (
        entity.type,
        entity.key,
        entity.state,
        entity.project,
        (parent.type, parent.key) if parent is not None else None,
        relations,
        props,
    )
    if entity.cloud is not None:
        doc = (*doc, entity.cloud)
    try:
        return _dumps(doc, option=_SORTED)
    except TypeError:  # a non-string property key (YAML allows them)
        return _dumps(doc, option=_SORTED_ANY_KEYS)


def of(entity: Entity, volatile: Collection[str] = ()) -> int:
    """The 64-bit xxh3 fingerprint of ``entity`` (never 0: 0 means deleted)."""
    return _xxh3(canonical_bytes(entity, volatile)) or 1
