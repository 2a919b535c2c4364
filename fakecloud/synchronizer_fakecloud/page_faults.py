"""Faults a 200 answer can hide: pages rewritten as a proxy or a buggy API would.

The answers keep their status and shape, so a client sees no error; what
they say is wrong in a way only the listing as a whole can reveal:

``displace``
    The first record of a page is replaced by the last record of the page
    before, as offset or marker paging does while rows are inserted or
    reordered under the walk: one record is listed twice and the one it
    displaced on no page.
``drop_next``
    The page comes back without its next link (``*_links``, ``links`` or
    ``next``), so the walk ends there as if the collection did.
``bad_record``
    One record of a listing (matched by ``id`` or ``uuid``) carries a field
    of the wrong type or value, e.g. a name ``12345`` or a null vm_state.

Each works on the listing's JSON body: the records are the one top-level
list that is not a links list.  Pure functions of a body; the state they
need between pages (the last record of each page, for ``displace``) is
passed in::

    >>> body = b'{"servers": [{"id": "b"}], "servers_links": [{"rel": "next", "href": "x"}]}'
    >>> drop_next(body)
    b'{"servers":[{"id":"b"}]}'
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["displace", "drop_next", "last_record", "set_field"]


def _records_key(doc: dict[str, Any]) -> str | None:
    for key, value in doc.items():
        if isinstance(value, list) and key != "links" and not key.endswith("_links"):
            return key
    return None


def _load(body: bytes) -> tuple[dict[str, Any], str] | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    key = _records_key(doc)
    return (doc, key) if key is not None else None


def last_record(body: bytes) -> Any:
    """The last record of a listing page, or None (no records, not a listing)."""
    loaded = _load(body)
    if loaded is None:
        return None
    doc, key = loaded
    return doc[key][-1] if doc[key] else None


def displace(body: bytes, previous_last: Any) -> bytes | None:
    """The page with its first record replaced by ``previous_last``; None if it cannot be."""
    loaded = _load(body)
    if loaded is None or previous_last is None:
        return None
    doc, key = loaded
    if not doc[key] or doc[key][0] == previous_last:
        return None
    doc[key][0] = previous_last
    return orjson.dumps(doc)


def drop_next(body: bytes) -> bytes | None:
    """The page without its next link; None when it had none."""
    loaded = _load(body)
    if loaded is None:
        return None
    doc, _ = loaded
    dropped = doc.pop("next", None) is not None
    for key in [k for k in doc if k == "links" or k.endswith("_links")]:
        links = doc[key]
        kept = [
            link for link in links if not (isinstance(link, dict) and link.get("rel") == "next")
        ]
        if len(kept) != len(links):
            dropped = True
            if kept:
                doc[key] = kept
            else:
                del doc[key]
    return orjson.dumps(doc) if dropped else None


def set_field(body: bytes, key: str, field: str, value: Any) -> bytes | None:
    """The page with ``field`` of the record ``key`` (its id or uuid) set; None if absent."""
    loaded = _load(body)
    if loaded is None:
        return None
    doc, records = loaded
    hit = False
    for record in doc[records]:
        if isinstance(record, dict) and key in (record.get("id"), record.get("uuid")):
            record[field] = value
            hit = True
    return orjson.dumps(doc) if hit else None
