"""What crosses the process boundary between a worker and the dispatcher.

Each worker has its own pipe (a ``multiprocessing`` connection): a worker
killed mid-write then breaks only its own pipe, where a shared
``multiprocessing.Queue`` could be left locked or corrupt.  Messages are
small tuples ``(kind, worker, body)``; changes travel as orjson-encoded
chunks of at most ``chunk_size`` changes, never as one pickled snapshot.

Kinds:

``begin``    a poll cycle starts: ``{"resync": bool, "started": ts, "full": bool, "types": [...]}``
``changes``  bytes: a chunk of changes
``end``      the cycle's outcome: ``{"complete": bool, "resync": bool, "listed": n,
             "created": n, "updated": n, "deleted": n, "duration": s, "error": str|None}``
``status``   a plugin-level state: ``{"plugin": name, "state": "failed"|"unavailable"|
             "disabled"|"running", "reason": str}``
``stats``    counters of the notification worker
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson

from synchronizer.model import Action, Change, Entity

BEGIN = "begin"
CHANGES = "changes"
END = "end"
STATUS = "status"
STATS = "stats"

Message = tuple[str, str, Any]


def encode(changes: Sequence[Change]) -> bytes:
    """One chunk of changes as bytes."""
    return orjson.dumps(
        [(str(c.action), c.fingerprint, c.final_state_unknown, c.entity.to_dict()) for c in changes]
    )


def decode(data: bytes) -> list[Change]:
    """The changes of one chunk; raises ValueError on a malformed chunk."""
    out = []
    for action, fp, fsu, entity in orjson.loads(data):
        out.append(Change(Action(action), Entity.from_dict(entity), fp, fsu))
    return out


def chunked(changes: Iterable[Change], size: int) -> Iterator[list[Change]]:
    """Split changes into lists of at most ``size``."""
    chunk: list[Change] = []
    for change in changes:
        chunk.append(change)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
