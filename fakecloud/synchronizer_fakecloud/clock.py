"""Time for the fake cloud: a strictly increasing clock and each API's format.

Every record of the fake cloud carries an ``updated`` instant (float seconds
since the epoch, UTC) taken from one :class:`Clock`, so two changes never
share an instant and ``changes-since`` style filters are exact. Each service
renders that instant the way the real one does::

    >>> nova_time(0.5)
    '1970-01-01T00:00:00Z'
    >>> cinder_time(0.5)
    '1970-01-01T00:00:00.000000'
    >>> ironic_time(0.5)
    '1970-01-01T00:00:00+00:00'

Formatting is memoised: bulk creation stamps thousands of records with one
instant. Nova, Neutron and Heat print whole seconds, so a record changed twice within
one second shows the same string although its internal instant moved.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from collections.abc import Callable

_UTC = datetime.UTC


class Clock:
    """A thread-safe clock whose readings strictly increase.

    Contract: :meth:`tick` returns a whole number of microseconds (as float
    seconds), at least one microsecond after the previous reading, even if
    the source stalls or steps back. Whole microseconds survive a round trip
    through an ISO 8601 string exactly, so a client that sends back a time it
    read gets every record stamped at or after it.  :attr:`offset` (seconds)
    shifts the clock from its source, as a server whose clock is wrong: set
    negative, the cloud's times (and its ``Date`` headers) run behind the
    client's; stepped back while running, instants still increase (by a
    microsecond each) until the source catches up, as a stepped clock would.
    Threading: safe from any thread.
    """

    def __init__(self, source: Callable[[], float] = time.time, offset: float = 0.0) -> None:
        self._source = source
        self._last_us = 0
        self._lock = threading.Lock()
        self.offset = offset

    def tick(self) -> float:
        """Return a new instant, later than every instant returned before."""
        with self._lock:
            self._last_us = max(int(self.peek() * 1_000_000), self._last_us + 1)
            return self._last_us / 1_000_000

    def peek(self) -> float:
        """Return the source's current time (plus the offset) without consuming an instant."""
        return self._source() + self.offset


def _dt(ts: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, _UTC)


@functools.lru_cache(maxsize=4096)
def nova_time(ts: float) -> str:
    """Nova's ``created``/``updated``: whole seconds with ``Z``."""
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def usage_time(ts: float) -> str:
    """Nova's ``OS-SRV-USG:*`` and Cinder's times: microseconds, no zone."""
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")


@functools.lru_cache(maxsize=4096)
def cinder_time(ts: float) -> str:
    """Cinder's ``created_at``/``updated_at``: whole seconds, a ``.000000`` fraction, no zone."""
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%S.000000")


neutron_time = nova_time
heat_time = nova_time


@functools.lru_cache(maxsize=4096)
def ironic_time(ts: float) -> str:
    """Ironic's ``*_at`` fields: whole seconds with ``+00:00`` (as Ironic 39 on MySQL)."""
    return _dt(ts).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=4096)
def keystone_time(ts: float) -> str:
    """Keystone's ``expires_at``/``issued_at``: microseconds with ``Z``."""
    return _dt(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Parse an ISO 8601 time as the APIs accept it; naive means UTC.

    Raises ValueError for anything that is not ISO 8601.
    """
    text = text.strip()
    if "T" in text:
        # An unescaped "+" in a query string arrives as a space.
        text = text.replace(" ", "+")
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return value.timestamp()
