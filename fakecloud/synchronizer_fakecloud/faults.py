"""Fault injection: failed pages, outages, delays, broken bodies, Keystone down.

Service names are ``keystone``, ``nova``, ``cinder``, ``neutron``,
``ironic``, ``heat`` and ``nagios``. Faults fire ``times`` times (None means
until :meth:`Faults.clear`)::

    faults.fail_page("nova", page=2, status=500)   # third page of a walk
    faults.fail("cinder", status=503)              # every Cinder request
    faults.delay("neutron", 5.0)                   # a client timeout
    faults.corrupt("heat", "truncate")             # next body cut in half
    faults.keystone_down(True, mode="refuse")      # connection dropped
    faults.displace("nova", page=1)                # a record listed twice, one lost
    faults.drop_next("cinder", page=0)             # the walk ends after page 0
    faults.bad_record("nova", sid, "name", 12345)  # a field of the wrong type
    faults.hang("heat")                            # answers never come
    faults.trickle("neutron", 2.0)                 # a byte every 2 s: no read times out

Pages are counted **0-based** per service and collection: a listing request
without ``marker`` is page 0 and each following request with a ``marker``
is the next page, so ``fail_page("nova", 1)`` fails the second request of a
walk over ``servers/detail``. Concurrent walks of one collection share the
counter; inject page faults only where one client walks at a time.

``displace``, ``drop_next`` and ``bad_record`` answer 200 with a body a
proxy or a buggy API could send (see :mod:`synchronizer_fakecloud.page_faults`):
no client sees an error.  Each fired fault is counted (:meth:`Faults.fired`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from synchronizer_fakecloud import page_faults
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
        self._rewrites: dict[str, list[_Fault]] = {}
        self._records: dict[str, list[tuple[str, str, Any, _Fault]]] = {}
        self._last: dict[tuple[str, str], Any] = {}  # last record of each walk's page
        self._hung: dict[str, _Fault] = {}
        self._released = threading.Condition(self._lock)
        self._generation = 0  # clear() moves it on: the hung requests it releases
        self._trickles: dict[str, float] = {}
        self._fired: dict[str, int] = {}

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

    def displace(
        self, service: str, page: int = 1, times: int | None = 1, collection: str | None = None
    ) -> None:
        """Replace the first record of the 0-based ``page`` (>= 1) by the page before's last."""
        self._rewrite(service, "displace", page, times, collection, low=1)

    def drop_next(
        self, service: str, page: int = 0, times: int | None = 1, collection: str | None = None
    ) -> None:
        """Answer the 0-based ``page`` of a walk without its next link."""
        self._rewrite(service, "drop_next", page, times, collection, low=0)

    def _rewrite(
        self,
        service: str,
        mode: str,
        page: int,
        times: int | None,
        collection: str | None,
        low: int,
    ) -> None:
        _check_service(service)
        _check_times(times)
        if page < low:
            raise ValueError(f"{mode}: page is 0-based and must be >= {low}")
        fault = _Fault(200, times, page=page, collection=collection, mode=mode)
        with self._lock:
            self._rewrites.setdefault(service, []).append(fault)

    def bad_record(
        self, service: str, key: str, field: str, value: Any = None, times: int | None = None
    ) -> None:
        """List the record ``key`` (its id or uuid) with ``field`` set to ``value``."""
        _check_service(service)
        _check_times(times)
        with self._lock:
            fault = _Fault(200, times, mode="bad_record")
            self._records.setdefault(service, []).append((key, field, value, fault))

    def hang(self, service: str, times: int | None = None) -> None:
        """Take the next requests of a service (``times``; None: all) and never answer them.

        The requests are released (answered) by :meth:`clear` or :meth:`abort`.
        """
        _check_service(service)
        _check_times(times)
        with self._lock:
            self._hung[service] = _Fault(0, times, mode="hang")

    def trickle(self, service: str, seconds_per_byte: float) -> None:
        """Write every answer of a service one byte per ``seconds_per_byte`` (0 to stop)."""
        _check_service(service)
        with self._lock:
            if seconds_per_byte > 0:
                self._trickles[service] = float(seconds_per_byte)
            else:
                self._trickles.pop(service, None)

    def clear(self) -> None:
        """Disarm every fault, release hung requests and forget page counters."""
        with self._lock:
            self._failures.clear()
            self._corruptions.clear()
            self._delays.clear()
            self._keystone = None
            self._pages.clear()
            self._rewrites.clear()
            self._records.clear()
            self._last.clear()
            self._hung.clear()
            self._trickles.clear()
            self._generation += 1
            self._released.notify_all()

    def fired(self) -> dict[str, int]:
        """How often each page fault, bad record and hang took effect, by kind."""
        with self._lock:
            return dict(self._fired)

    def abort(self) -> None:
        """Release every delayed, hung or trickling request now (the server is stopping)."""
        self._stop.set()
        with self._lock:
            self._released.notify_all()

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

    def hold(self, service: str) -> None:
        """Block while the service is hung (until :meth:`clear` or :meth:`abort`)."""
        with self._lock:
            fault = self._hung.get(service)
            if fault is None:
                return
            if fault.consume():
                del self._hung[service]
            self._fired["hang"] = self._fired.get("hang", 0) + 1
            generation = self._generation
            while self._generation == generation and not self._stop.is_set():
                self._released.wait(0.5)

    def trickle_of(self, service: str) -> float:
        """Seconds per byte the service's answers are written at (0: all at once)."""
        with self._lock:
            return self._trickles.get(service, 0.0)

    def trickling(self) -> bool:
        """Whether any service's answers are still to be trickled."""
        with self._lock:
            return bool(self._trickles)

    def stopping(self, seconds: float) -> bool:
        """Wait ``seconds`` unless aborted; True when aborted."""
        return self._stop.wait(seconds)

    def rewrite(
        self, service: str, collection: str | None, page: int | None, resp: Response
    ) -> Response:
        """The answer as the armed page faults and bad records make it (a 200 stays a 200)."""
        if resp.status != 200 or collection is None:
            return resp
        with self._lock:
            body = resp.body
            if self._rewrites.get(service) or self._records.get(service):
                body = self._rewritten(service, collection, page, body)
        if body is resp.body:
            return resp
        return Response(resp.status, body, resp.headers, resp.content_type)

    def _rewritten(self, service: str, collection: str, page: int | None, body: bytes) -> bytes:
        walk = (service, collection)
        previous = self._last.get(walk)
        self._last[walk] = page_faults.last_record(body)
        for fault in list(self._rewrites.get(service, [])):
            if not fault.matches(page, collection):
                continue
            if fault.mode == "displace":
                new = page_faults.displace(body, previous)
            else:
                new = page_faults.drop_next(body)
            if new is not None:
                body = new
                self._count(fault, self._rewrites[service])
        for entry in list(self._records.get(service, [])):
            key, field, value, fault = entry
            new = page_faults.set_field(body, key, field, value)
            if new is not None:
                body = new
                if fault.consume():
                    self._records[service].remove(entry)
                self._fired["bad_record"] = self._fired.get("bad_record", 0) + 1
        return body

    def _count(self, fault: _Fault, armed: list[_Fault]) -> None:
        if fault.consume():
            armed.remove(fault)
        self._fired[fault.mode] = self._fired.get(fault.mode, 0) + 1

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
