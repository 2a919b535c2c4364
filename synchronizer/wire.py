"""What crosses the process boundary between a worker and the dispatcher.

Each worker has its own pipe (a ``multiprocessing`` connection): a worker
killed mid-write then breaks only its own pipe, where a shared
``multiprocessing.Queue`` could be left locked or corrupt.  The reader
knows which worker a pipe belongs to, so a message does not repeat the
worker's name.  Every message is one of the frozen values below
(:data:`Message`); changes travel as :class:`Changes`, orjson-encoded
chunks of at most ``chunk_size`` changes, never as one pickled snapshot::

    >>> import multiprocessing
    >>> reader, writer = multiprocessing.Pipe(duplex=False)
    >>> writer.send(PluginStatus("static", PluginState.RUNNING))
    >>> reader.recv()
    PluginStatus(plugin='static', state=<PluginState.RUNNING: 'running'>, reason='')

A collector's cycle is ``CycleBegin``, any number of ``Changes``, then
``CycleEnd``; a worker reports each of its plugins once with
``PluginStatus`` (and again if a permanent error disables it); the
notification worker sends its cumulative counters as ``NotificationStats``
every few seconds.  Values are immutable and compare by value.

One message goes the other way, on the same (duplex) pipe: the
notification worker's ``Changes`` ask for an answer (``through``: how many
changes the worker has handed on, up to this chunk's last), and the main
process answers :class:`Committed` once the store has committed that
chunk (or could not).  The worker acknowledges a notification to the bus
only then (see :mod:`synchronizer.workers.notification`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Sequence

import orjson

from synchronizer.model import Action, Change, Entity

__all__ = [
    "Changes",
    "Committed",
    "CycleBegin",
    "CycleEnd",
    "EventCount",
    "Message",
    "NotificationStats",
    "Outcome",
    "PluginState",
    "PluginStatus",
    "chunked",
    "decode",
    "encode",
]


class PluginState(enum.StrEnum):
    """Where a plugin stands.

    ``RUNNING``, ``FAILED`` (could not be found, imported, configured or
    built), ``UNAVAILABLE`` (its ``available()`` check said no) and
    ``DISABLED`` (a permanent error stopped it until the next reload) are
    what workers report.  ``HUNG``: a poll cycle ran past its bound
    (``[plugin] cycle_timeout``); the worker exits and is restarted with
    back-off, so the plugin is not down, but readiness no longer waits for
    it.  ``STARTING`` is the main process's word for a plugin it has not
    heard from yet; no worker sends it.
    """

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"
    DISABLED = "disabled"
    HUNG = "hung"

    @property
    def down(self) -> bool:
        """Whether the plugin will not run before the next reload."""
        return self in _DOWN


_DOWN = frozenset({PluginState.FAILED, PluginState.UNAVAILABLE, PluginState.DISABLED})


class Outcome(enum.StrEnum):
    """What became of a notification: every one is ``RECEIVED``, then one of the others.

    ``MAPPED`` gave at least one change, ``IGNORED`` no plugin took it (or
    the plugin returned nothing), ``DROPPED`` it was bad input.
    """

    RECEIVED = "received"
    MAPPED = "mapped"
    IGNORED = "ignored"
    DROPPED = "dropped"


@dataclasses.dataclass(frozen=True, slots=True)
class CycleBegin:
    """A poll cycle starts: full or delta listing, and whether it is a resync.

    ``started`` (UTC ISO 8601) is when the listing began: on a resync the
    dispatcher deletes the plugin's entities last seen before it and not
    listed.  ``types`` are the entity types the plugin owns.
    """

    resync: bool
    full: bool
    started: str
    types: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """One chunk of changes, as orjson bytes (decoded only by the dispatcher).

    ``through`` (0: no answer wanted): the count of changes the sending
    worker has handed on, this chunk's included; the main process answers
    ``Committed(through)`` to ``sender`` (the worker's pid, so that an answer
    never reaches a worker started since) once the chunk is committed.
    """

    chunk: bytes
    through: int = 0
    sender: int = 0

    @classmethod
    def of(cls, changes: Sequence[Change], through: int = 0, sender: int = 0) -> Changes:
        return cls(encode(changes), through, sender)

    def decode(self) -> list[Change]:
        """The chunk's changes; raises ValueError on a malformed chunk."""
        return decode(self.chunk)


@dataclasses.dataclass(frozen=True, slots=True)
class CycleEnd:
    """A poll cycle's outcome.

    Invariants: ``error`` is None exactly when ``complete``; ``resync`` is
    true only for a complete resync; ``tracked`` is the size of the
    baseline after the cycle (unchanged by an incomplete one).  ``held``:
    deletes this listing held back as a mass delete (see
    :class:`synchronizer.deletes.MassDeleteHold`); ``unconvertible``:
    records it named but could not convert (their entities keep their last
    good state); ``kept``: with a complete resync, the keys of those records,
    which the resync listed although it sent nothing for them (so they
    are not taken for gone).
    """

    complete: bool
    resync: bool
    full: bool
    listed: int = 0
    tracked: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    duration: float = 0.0
    error: str | None = None
    held: int = 0
    unconvertible: int = 0
    kept: tuple[tuple[str, str], ...] = ()

    def by_action(self) -> dict[Action, int]:
        """The changes the cycle sent, per action."""
        return {
            Action.CREATE: self.created,
            Action.UPDATE: self.updated,
            Action.DELETE: self.deleted,
        }

    @property
    def failure_kind(self) -> str:
        """What ended an incomplete cycle: the exception class named in ``error``."""
        return (self.error or "error").split(":", 1)[0]


@dataclasses.dataclass(frozen=True, slots=True)
class PluginStatus:
    """A plugin's state as its worker reports it, with the reason when it is down."""

    plugin: str
    state: PluginState
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class EventCount:
    """How many notifications of one event type had one outcome with one plugin."""

    plugin: str
    event_type: str
    outcome: Outcome
    count: int


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationStats:
    """A notification worker's cumulative counters (each report replaces the last)."""

    received: int = 0
    mapped: int = 0
    ignored: int = 0
    dropped: int = 0
    by_event: tuple[EventCount, ...] = ()

    def by_outcome(self) -> dict[Outcome, int]:
        return {
            Outcome.RECEIVED: self.received,
            Outcome.MAPPED: self.mapped,
            Outcome.IGNORED: self.ignored,
            Outcome.DROPPED: self.dropped,
        }

    @classmethod
    def total(cls, reports: Iterable[NotificationStats]) -> NotificationStats:
        """Several workers' counters summed, per outcome and per event."""
        sums = dict.fromkeys(Outcome, 0)
        events: dict[tuple[str, str, Outcome], int] = {}
        for report in reports:
            for outcome, n in report.by_outcome().items():
                sums[outcome] += n
            for e in report.by_event:
                key = (e.plugin, e.event_type, e.outcome)
                events[key] = events.get(key, 0) + e.count
        return cls(
            received=sums[Outcome.RECEIVED],
            mapped=sums[Outcome.MAPPED],
            ignored=sums[Outcome.IGNORED],
            dropped=sums[Outcome.DROPPED],
            by_event=tuple(EventCount(*key, n) for key, n in events.items()),
        )


Message = CycleBegin | Changes | CycleEnd | PluginStatus | NotificationStats


@dataclasses.dataclass(frozen=True, slots=True)
class Committed:
    """The main process's answer to ``Changes(through=N)``: committed (``ok``), or not.

    Not ``ok``: the chunk was not committed (the dispatcher failed on it, or
    the partition it belongs to is no longer this member's); the worker
    gives its notifications back to the bus.
    """

    through: int
    ok: bool = True


def encode(changes: Sequence[Change]) -> bytes:
    """One chunk of changes as bytes."""
    return orjson.dumps(
        [
            (str(c.action), c.fingerprint, c.final_state_unknown, c.entity.to_dict(), c.inferred)
            for c in changes
        ]
    )


def decode(data: bytes) -> list[Change]:
    """The changes of one chunk; raises ValueError on a malformed chunk."""
    out = []
    for action, fp, fsu, entity, inferred in orjson.loads(data):
        out.append(Change(Action(action), Entity.from_dict(entity), fp, fsu, inferred=inferred))
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
