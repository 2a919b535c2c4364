"""How a told change is kept in a database row, by the SQLite and the SQL stores alike.

A fingerprint (an unsigned 64-bit xxHash) is stored as a signed 64-bit
integer, which every database's BIGINT holds; a change is stored as its
JSON document (:meth:`~synchronizer.model.Change.to_json`), and read back
with :func:`change_of`.
"""

from __future__ import annotations

import orjson

from synchronizer.model import Action, Change, Entity

_U64 = 1 << 64


def signed(fp: int) -> int:
    """A fingerprint as the signed 64-bit integer a BIGINT column holds."""
    return fp - _U64 if fp >= 1 << 63 else fp


def unsigned(fp: int) -> int:
    """The fingerprint a BIGINT column's value stands for."""
    return fp + _U64 if fp < 0 else fp


def doc_of(change: Change, written: dict[int, tuple[Change, str]]) -> str:
    """The change's JSON: as written into its entity row, if it was that very change.

    ``written`` maps ``id(change)`` to the change and its JSON, noted when
    the batch's rows were written, so the history reuses the string.
    """
    found = written.get(id(change))
    if found is not None and found[0] is change:
        return found[1]
    return change.to_json().decode()


def change_of(doc: str | bytes, fp: int) -> Change:
    """The change a row holds: its JSON document and its stored fingerprint."""
    data = orjson.loads(doc)
    return Change(
        Action(data["action"]),
        Entity.from_dict(data),
        unsigned(fp),
        bool(data["final_state_unknown"]),
        int(data["seq"]),
    )
