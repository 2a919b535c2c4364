"""Fault injection: failed pages, outages, delays, broken bodies, Keystone down.

Service names are ``keystone``, ``nova``, ``cinder``, ``neutron``,
``ironic``, ``heat`` and ``nagios``. Faults fire ``times`` times (None means
until :meth:`Faults.clear`)::

    faults.fail_page("nova", page=2, status=500)   # third page of a walk
    faults.fail("cinder", status=503)              # every Cinder request
    faults.delay("neutron", 5.0)                   # a client timeout
    faults.corrupt("heat", "truncate")             # next body cut in half
    faults.keystone_down(True, mode="refuse")      # connection dropped

Pages are counted **0-based** per service and collection: a listing request
without ``marker`` is page 0 and each following request with a ``marker``
is the next page, so ``fail_page("nova", 1)`` fails the second request of a
walk over ``servers/detail``. Concurrent walks of one collection share the
counter; inject page faults only where one client walks at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from synchronizer_fakecloud.web import Response

SERVICES = ("keystone", "nova", "cinder", "neutron", "ironic", "heat", "nagios")
CORRUPTIONS = ("truncate", "malformed", "empty", "disconnect", "enormous")
ENORMOUS_BYTES = 32 * 1024 * 1024
KEYSTONE_DOWN_MODES = ("refuse", "503")


@dataclass(slots=True)
class _Fault:
    status: int
    remaining: int | None
    page: int | None = None
    collection: str | None = None
    mode: str = ""

    def matches(self, page: int | None, collection: str | None) -> bool:
        if self.page is not None and self.page != page:
            return False
        return self.collection is None or self.collection == collection

    def consume(self) -> bool:
        """Count one firing; return True when the fault is used up."""
        if self.remaining is None:
            return False
        self.remaining -= 1
        return self.remaining <= 0


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}, expected one of {SERVICES}")


def _check_times(times: int | None) -> None:
    if times is not None and times < 1:
        raise ValueError("times must be >= 1 or None")


class Faults:
    """The faults armed on the fake cloud.

    Contract: each arming call validates its arguments (ValueError) and
    takes effect for requests that start after it returns.
    Threading: safe from any thread; delays are cut short by :meth:`abort`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failures: dict[str, list[_Fault]] = {}
        self._corruptions: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._keystone: str | None = None
        self._pages: dict[tuple[str, str], int] = {}

    def fail_page(
        self,
        service: str,
        page: int,
        status: int = 500,
        times: int | None = 1,
        collection: str | None = None,
    ) -> None:
        """Answer ``status`` to the 0-based ``page`` of a listing walk."""
        _check_service(service)
        _check_times(times)
        if page < 0:
            raise ValueError("page is 0-based and must be >= 0")
        fault = _Fault(status, times, page=page, collection=collection)
        with self._lock:
            self._failures.setdefault(service, []).append(fault)

    def fail(self, service: str, status: int = 503, times: int | None = None) -> None:
        """Answer ``status`` to every request of a service (an outage)."""
        _check_service(service)
        _check_times(times)
        with self._lock:
            self._failures.setdefault(service, []).append(_Fault(status, times))

    def delay(self, service: str, seconds: float) -> None:
        """Hold every answer of a service for ``seconds`` (0 to stop)."""
        _check_service(service)
        with self._lock:
            if seconds > 0:
                self._delays[service] = float(seconds)
            else:
                self._delays.pop(service, None)

    def corrupt(self, service: str, mode: str = "truncate", times: int | None = 1) -> None:
        """Break the body of the next answers of a service.

        ``truncate``: 200 with the first half of the JSON; ``malformed``: 200
        with an HTML error page; ``empty``: 200 with no body;
        ``disconnect``: the full length announced, half sent, then closed;
        ``enormous``: 200 with :data:`ENORMOUS_BYTES` of a JSON array that
        never ends (a runaway proxy or a broken server).
        """
        _check_service(service)
        _check_times(times)
        if mode not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {mode!r}, expected one of {CORRUPTIONS}")
        with self._lock:
            self._corruptions.setdefault(service, []).append(_Fault(200, times, mode=mode))

    def keystone_down(self, down: bool = True, mode: str = "refuse") -> None:
        """Take Keystone down: ``refuse`` drops connections, ``503`` answers."""
        if mode not in KEYSTONE_DOWN_MODES:
            raise ValueError(f"unknown mode {mode!r}, expected one of {KEYSTONE_DOWN_MODES}")
        with self._lock:
            self._keystone = mode if down else None

    def clear(self) -> None:
        """Disarm every fault and forget page counters."""
        with self._lock:
            self._failures.clear()
            self._corruptions.clear()
            self._delays.clear()
            self._keystone = None
            self._pages.clear()

    def abort(self) -> None:
        """Release every delayed request now (the server is stopping)."""
        self._stop.set()

    def arm(self) -> None:
        """Allow delays again after :meth:`abort`."""
        self._stop.clear()

    # What the server asks while answering a request.

    def keystone_mode(self) -> str | None:
        """``refuse``, ``503`` or None when Keystone is up."""
        with self._lock:
            return self._keystone

    def wait(self, service: str) -> None:
        """Sleep the service's delay, if any, unless aborted."""
        with self._lock:
            seconds = self._delays.get(service, 0.0)
        if seconds:
            self._stop.wait(seconds)

    def page_of(self, service: str, collection: str, has_marker: bool) -> int:
        """Count a listing request and return its 0-based page in the walk."""
        key = (service, collection)
        with self._lock:
            page = self._pages[key] + 1 if has_marker and key in self._pages else 0
            self._pages[key] = page
            return page

    def failure(self, service: str, page: int | None, collection: str | None) -> int | None:
        """The status of an armed failure matching this request, if any."""
        with self._lock:
            return self._fire(self._failures.get(service, []), page, collection)

    def corruption(self, service: str) -> str | None:
        """The corruption to apply to this answer of a service, if any."""
        with self._lock:
            faults = self._corruptions.get(service, [])
            for fault in faults:
                if fault.consume():
                    faults.remove(fault)
                return fault.mode
            return None

    @staticmethod
    def _fire(faults: list[_Fault], page: int | None, collection: str | None) -> int | None:
        for fault in faults:
            if fault.matches(page, collection):
                if fault.consume():
                    faults.remove(fault)
                return fault.status
        return None


def corrupt_response(resp: Response, mode: str) -> Response:
    """Apply a corruption mode to a response (see :meth:`Faults.corrupt`)."""
    half = len(resp.body) // 2
    if mode == "truncate":
        return Response(200, resp.body[:half], resp.headers, resp.content_type)
    if mode == "malformed":
        page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        return Response(200, page, resp.headers, resp.content_type)
    if mode == "empty":
        return Response(200, b"", resp.headers, resp.content_type)
    if mode == "enormous":
        junk = b'{"items": [' + b'"x",' * (ENORMOUS_BYTES // 4)
        return Response(200, junk, resp.headers, resp.content_type)
    return Response(resp.status, resp.body, resp.headers, resp.content_type, disconnect_after=half)
