"""Request accounting, so tests can assert what a client asked for.

Every request to a service (not to ``/_control``) is counted by
``"METHOD /path"`` and kept in a bounded log with its query, so that a test
can check, e.g., that a delta poll only sent ``changes-since`` listings::

    full = stats.find(service="nova", path_suffix="/servers/detail",
                      where=lambda r: "changes-since" not in r.query)
    assert not full
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the fake cloud saw it (no headers, no body).

    ``status`` is 0 when the connection was dropped without an answer.
    """

    service: str
    method: str
    path: str
    query: Mapping[str, list[str]]
    status: int
    at: float


class RequestStats:
    """Counters per method and path, and a log of the latest requests.

    Contract: the log keeps the newest ``maxlen`` records; counters are
    exact until :meth:`reset`. Threading: safe from any thread.
    """

    def __init__(self, maxlen: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._log: collections.deque[RequestRecord] = collections.deque(maxlen=maxlen)

    def record(
        self, service: str, method: str, path: str, query: Mapping[str, list[str]], status: int
    ) -> None:
        """Account for one answered request."""
        rec = RequestRecord(service, method, path, dict(query), status, time.time())
        with self._lock:
            self._counts[f"{method} {path}"] += 1
            self._log.append(rec)

    def counts(self) -> dict[str, int]:
        """``{"GET /compute/v2.1/servers/detail": n, ...}``."""
        with self._lock:
            return dict(self._counts)

    def count(
        self, path: str | None = None, method: str | None = None, service: str | None = None
    ) -> int:
        """Number of logged requests matching every given criterion.

        ``path`` matches as a suffix, so ``"/servers/detail"`` is enough.
        """
        return len(self.find(service=service, method=method, path_suffix=path))

    def find(
        self,
        service: str | None = None,
        method: str | None = None,
        path_suffix: str | None = None,
        where: Callable[[RequestRecord], bool] | None = None,
    ) -> list[RequestRecord]:
        """Logged requests matching every given criterion, oldest first."""
        with self._lock:
            log = list(self._log)
        return [
            rec
            for rec in log
            if (service is None or rec.service == service)
            and (method is None or rec.method == method)
            and (path_suffix is None or rec.path.rstrip("/").endswith(path_suffix))
            and (where is None or where(rec))
        ]

    def reset(self) -> None:
        """Forget every counter and record."""
        with self._lock:
            self._counts.clear()
            self._log.clear()
