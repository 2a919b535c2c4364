"""The fake cloud as a real HTTP server on loopback.

:class:`FakeCloud` is a :class:`~synchronizer_fakecloud.cloud.Cloud` (store,
tokens, faults, statistics, Python control API) served over HTTP by one
``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per connection)::

    with FakeCloud() as cloud:                       # port 0: ephemeral
        cloud.populate(servers=1000, hosts=10)
        auth = v3.Password(auth_url=cloud.auth_url, username="admin",
                           password="secret", project_name="admin",
                           user_domain_id="default", project_domain_id="default")
        nova = novaclient.client.Client("2.96", session=Session(auth=auth))

Each request goes through: Keystone-down check, delay, hang, token check
(except version documents, Keystone itself and Nagios' basic auth), page
counting and injected failures, the service, page rewrites (displaced
records, dropped next links, bad records), injected body corruption, a
trickled write, then statistics. ``Date`` headers come from the cloud's
clock (see :meth:`Cloud.clock_offset`). The request log prints only method,
path and query.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from synchronizer_fakecloud import cinder, heat, ironic, keystone, nagios, neutron, nova
from synchronizer_fakecloud.cloud import Cloud
from synchronizer_fakecloud.faults import corrupt_response
from synchronizer_fakecloud.web import Request, Response, json_response

LOG = logging.getLogger(__name__)
_ERRORS = {
    "keystone": keystone.error,
    "nova": nova.error,
    "cinder": cinder.error,
    "neutron": neutron.error,
    "ironic": ironic.error,
    "heat": heat.error,
}


class Service(Protocol):
    """What the server needs of a fake API."""

    name: str
    prefixes: tuple[str, ...]

    def public(self, req: Request) -> bool: ...

    def listing(self, req: Request) -> str | None: ...

    def handle(self, req: Request) -> Response: ...


def _service_error(service: str, status: int) -> Response:
    message = f"Injected fault: HTTP {status}"
    make = _ERRORS.get(service)
    if make is None:
        return Response(status, b"<html><body>%d</body></html>" % status, {}, "text/html")
    return make(status, message)


class FakeCloud(Cloud):
    """A fake OpenStack cloud (plus Nagios) served over HTTP on loopback.

    Lifecycle: construct, :meth:`start` (or use as a context manager),
    :meth:`stop`. The store may be filled before or after start. ``port=0``
    picks a free port; :attr:`url` is valid once started.
    Threading: every public method is safe from any thread while serving.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self._address = (host, port)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._services: list[Service] = [
            keystone.KeystoneService(self.credentials, self.tokens),
            nova.NovaService(self.state),
            cinder.CinderService(self.state),
            neutron.NeutronService(self.state),
            ironic.IronicService(self.state),
            heat.HeatService(self.state),
            nagios.NagiosService(self.state, self.nagios_user, self._nagios_password),
        ]

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("the fake cloud is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def auth_url(self) -> str:
        """The Keystone v3 URL for keystoneauth's ``auth_url``."""
        return self.url + "/identity/v3"

    @property
    def nagios_url(self) -> str:
        """The URL of Nagios' ``statusjson.cgi``."""
        return self.url + nagios.PATH

    @property
    def control_url(self) -> str:
        """The root of the HTTP control API."""
        return self.url + "/_control"

    def start(self) -> FakeCloud:
        """Bind and serve in a daemon thread; return self."""
        if self._httpd is not None:
            return self
        self.faults.arm()
        self._httpd = _Server(self._address, _Handler, self)
        self.state.invalidate_cache()
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # how soon stop() is noticed
            name="fakecloud-http",
            daemon=True,
        )
        self._thread.start()
        LOG.info("Fake cloud serving on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; delayed requests are released."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.faults.abort()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        LOG.info("Fake cloud stopped")

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, req: Request) -> Response:
        """Answer one parsed request (the HTTP layer's entry point)."""
        if req.path == "/_control" or req.path.startswith("/_control/"):
            return self.control.handle(req)
        service = next(
            (
                s
                for s in self._services
                if any(req.path == p or req.path.startswith(p + "/") for p in s.prefixes)
            ),
            None,
        )
        if service is None:
            return json_response(404, {"error": f"no fake service at {req.path}"})
        resp = self._serve(service, req)
        self.stats.record(service.name, req.method, req.path, req.query, resp.status)
        return resp

    def _serve(self, service: Service, req: Request) -> Response:
        name = service.name
        if name == "keystone" and (mode := self.faults.keystone_mode()):
            return Response(0, refuse=True) if mode == "refuse" else _service_error(name, 503)
        self.faults.wait(name)
        self.faults.hold(name)
        if not service.public(req):
            token = self.tokens.validate(req.header("X-Auth-Token"))
            if token is None:
                return keystone.unauthorized(req.base_url)
            req = req.with_token(token)
        collection = service.listing(req)
        page = None
        if collection is not None:
            page = self.faults.page_of(name, collection, "marker" in req.query)
        status = self.faults.failure(name, page, collection)
        if status is not None:
            return _service_error(name, status)
        resp = self.faults.rewrite(name, collection, page, service.handle(req))
        mode = self.faults.corruption(name)
        resp = corrupt_response(resp, mode) if mode else resp
        trickle = self.faults.trickle_of(name)
        return dataclasses.replace(resp, trickle=trickle) if trickle else resp


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that stop() can end keep-alive threads."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], cloud: FakeCloud
    ) -> None:
        self.cloud = cloud
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout, an injected delay) is not an error."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            LOG.debug("Client %s left before its answer was written", client_address[0])
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut every open connection down; their threads then finish."""
        with self._open_lock:
            connections = list(self._open)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections are closed after this
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's stderr log: it would print raw lines."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header, on the cloud's clock (which may run off, see its offset)."""
        when = self.server.cloud.state.clock.peek() if timestamp is None else timestamp
        return email.utils.formatdate(when, usegmt=True)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log method, path (with query) and status; never headers or bodies."""
        LOG.debug("%s %s %s", self.command, self.path, code)

    def _serve(self) -> None:
        try:
            resp = self.server.cloud.dispatch(self._parse())
        except Exception:
            LOG.exception("Fake cloud failed on %s %s", self.command, urlsplit(self.path).path)
            resp = json_response(500, {"error": "fake cloud internal error"})
        self._write(resp)

    def _parse(self) -> Request:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            base_url=self.server.cloud.url,
        )

    def _write(self, resp: Response) -> None:
        if resp.refuse:
            self.close_connection = True
            return
        body = resp.body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        if resp.disconnect_after is not None:
            body = body[: resp.disconnect_after]
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.trickle:
            self._trickle(body, resp.trickle)
            return
        self.wfile.write(body)

    def _trickle(self, body: bytes, seconds: float) -> None:
        """One byte, then a pause: a client's read timeout never fires, the answer never ends."""
        faults = self.server.cloud.faults
        self.close_connection = True
        for i in range(len(body)):
            self.wfile.write(body[i : i + 1])
            self.wfile.flush()
            if faults.stopping(seconds) or not faults.trickling():
                return
