"""Fake Nova (compute) at ``/compute``: versions, microversions, routing.

``GET /compute/`` and ``GET /compute/v2.1`` are the unauthenticated version
documents (``min_version`` 2.1, ``version`` 2.96, python-novaclient's
maximum). Every other request is under ``/compute/v2.1`` (optionally
followed by a project id, as legacy endpoints have it) and negotiates its
microversion from ``OpenStack-API-Version: compute X`` or
``X-OpenStack-Nova-API-Version: X`` (``latest`` allowed, default 2.1);
both headers are echoed back, and a version out of range is a 406.

Errors have Nova's shape: ``{"badRequest": {"code": 400, "message": ...}}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from synchronizer_fakecloud import nova_flavors, nova_hosts, nova_server_api
from synchronizer_fakecloud.state import CloudState
from synchronizer_fakecloud.web import ApiError, Request, Response, json_response, request_id

Version = tuple[int, int]
MIN_VERSION: Version = (2, 1)
MAX_VERSION: Version = (2, 96)
_FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
_PROJECT_IN_PATH = re.compile(r"^/[0-9a-f]{32}(?=/)")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class NovaCall:
    """One API call: the request, its negotiated microversion, the cloud."""

    req: Request
    version: Version
    state: CloudState

    @property
    def base(self) -> str:
        """The compute root URL, as Nova's links start."""
        return self.req.base_url + "/compute"

    @property
    def project_id(self) -> str | None:
        """The project of the caller's token."""
        return self.req.project_id


Handler = Callable[..., Response]
_ROUTES: tuple[tuple[re.Pattern[str], Handler], ...] = tuple(
    (re.compile(pattern), handler)
    for pattern, handler in (
        (r"^/servers/detail$", nova_server_api.list_detail),
        (r"^/servers$", nova_server_api.list_brief),
        (r"^/servers/(?P<ident>[^/]+)$", nova_server_api.show),
        (r"^/flavors/detail$", nova_flavors.list_detail),
        (r"^/flavors$", nova_flavors.list_brief),
        (r"^/flavors/(?P<ident>[^/]+)$", nova_flavors.show),
        (r"^/os-hypervisors/detail$", nova_hosts.list_detail),
        (r"^/os-hypervisors$", nova_hosts.list_brief),
        (r"^/os-hypervisors/(?P<ident>[^/]+)$", nova_hosts.show),
        (r"^/os-availability-zone/detail$", nova_hosts.zones_detail),
        (r"^/os-availability-zone$", nova_hosts.zones_brief),
        (r"^/os-services$", nova_hosts.services),
    )
)
_LISTINGS = {
    "/servers/detail",
    "/servers",
    "/flavors/detail",
    "/flavors",
    "/os-hypervisors/detail",
    "/os-hypervisors",
}


def error(status: int, message: str) -> Response:
    """A Nova fault body."""
    name = _FAULT_NAMES.get(status, "computeFault")
    return json_response(status, {name: {"code": status, "message": message}})


def _text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def parse_version(value: str) -> Version:
    """``"2.53"`` -> (2, 53), ``latest`` -> the maximum; 400 otherwise."""
    if value.strip().lower() == "latest":
        return MAX_VERSION
    match = _VERSION_RE.match(value.strip())
    if match is None:
        raise ApiError(
            400,
            f"API Version String {value} is of invalid format. Must be of "
            "format MajorNum.MinorNum.",
        )
    return int(match.group(1)), int(match.group(2))


def negotiate(req: Request) -> Version:
    """The microversion a request asks for; 406 when out of range."""
    wanted = None
    for item in (req.header("OpenStack-API-Version") or "").split(","):
        parts = item.split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            wanted = parts[1]
    if wanted is None:
        wanted = req.header("X-OpenStack-Nova-API-Version")
    if wanted is None:
        return MIN_VERSION
    version = parse_version(wanted)
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ApiError(
            406,
            f"Version {_text(version)} is not supported by the API. Minimum "
            f"is {_text(MIN_VERSION)} and maximum is {_text(MAX_VERSION)}.",
        )
    return version


def version_doc(base: str, current: bool = True) -> dict:
    """The v2.1 (or legacy v2.0) version document."""
    if current:
        ident, href, ver, low, status = "v2.1", "/v2.1/", _text(MAX_VERSION), "2.1", "CURRENT"
        media = "application/vnd.openstack.compute+json;version=2.1"
    else:
        ident, href, ver, low, status = "v2.0", "/v2/", "", "", "DEPRECATED"
        media = "application/vnd.openstack.compute+json;version=2"
    return {
        "id": ident,
        "status": status,
        "version": ver,
        "min_version": low,
        "updated": "2013-07-23T11:33:21Z",
        "links": [
            {"href": base + href, "rel": "self"},
            {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"},
        ],
        "media-types": [{"base": "application/json", "type": media}],
    }


class NovaService:
    """The compute API of the fake cloud.

    Threading: stateless; every handler reads the cloud under its lock.
    """

    name = "nova"
    prefixes = ("/compute",)

    def __init__(self, state: CloudState) -> None:
        self.state = state

    @staticmethod
    def _api_path(req: Request) -> str | None:
        """The path below ``/compute/v2.1`` (project id dropped), or None."""
        path = req.path.removeprefix("/compute")
        if not path.startswith("/v2.1/"):
            return None
        rest = path[len("/v2.1") :]
        return _PROJECT_IN_PATH.sub("", rest).rstrip("/") or "/"

    def public(self, req: Request) -> bool:
        """Version documents need no token, as in Nova's paste pipeline."""
        api = self._api_path(req)
        return api is None or api == "/"

    def listing(self, req: Request) -> str | None:
        """The collection a GET walks (for page faults), or None."""
        api = self._api_path(req)
        return api.lstrip("/") if req.method == "GET" and api in _LISTINGS else None

    def handle(self, req: Request) -> Response:
        """Route one request."""
        api = self._api_path(req)
        if api is None or api == "/":
            return self._versions(req)
        try:
            version = negotiate(req)
        except ApiError as exc:
            return error(exc.status, exc.message)
        resp = self._dispatch(NovaCall(req, version, self.state), api)
        value = _text(version)
        resp.headers.update(
            {
                "OpenStack-API-Version": f"compute {value}",
                "X-OpenStack-Nova-API-Version": value,
                "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
                "x-compute-request-id": resp.headers.get("x-openstack-request-id", request_id()),
            }
        )
        return resp

    def _versions(self, req: Request) -> Response:
        base = req.base_url + "/compute"
        path = req.path.removeprefix("/compute").rstrip("/")
        if path == "":
            docs = [version_doc(base, current=False), version_doc(base)]
            return json_response(200, {"versions": docs})
        if path in ("/v2.1", "/v2"):
            return json_response(200, {"version": version_doc(base, path == "/v2.1")})
        return error(404, "The resource could not be found.")

    def _dispatch(self, call: NovaCall, api: str) -> Response:
        for pattern, handler in _ROUTES:
            match = pattern.match(api)
            if match is None:
                continue
            if call.req.method != "GET":
                return error(405, "The method specified is not allowed for this resource.")
            try:
                return handler(call, **match.groupdict())
            except ApiError as exc:
                return error(exc.status, exc.message)
        return error(404, "The resource could not be found.")
