"""Nova's server endpoints: ``/servers``, ``/servers/detail``, ``/servers/{id}``.

Listings are newest first (Nova's ``created_at desc``), at most 1000 per
page (also the default), with a ``servers_links`` "next" link whenever a
page is full, even when no more servers follow. ``all_tenants`` (admin)
lists every project, otherwise only the token's project; ``project_id``,
``host`` and ``status`` filter. ``changes-since`` returns servers updated
at or after the time, deleted ones included (``status: DELETED``);
``changes-before`` (2.66+) bounds it above; without either, deleted servers
are hidden. An unknown ``marker`` is a 400 ``marker [x] not found``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from synchronizer_fakecloud import clock
from synchronizer_fakecloud.nova_servers import encoder, shape_of
from synchronizer_fakecloud.state import Record
from synchronizer_fakecloud.web import (
    ApiError,
    Response,
    bool_param,
    json_list_body,
    json_response,
    next_link,
    parse_limit,
    take,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from synchronizer_fakecloud.nova import NovaCall

MAX_LIMIT = 1000


def _time_param(call: NovaCall, name: str) -> float | None:
    value = call.req.param(name)
    if value is None:
        return None
    try:
        return clock.parse_time(value)
    except ValueError:
        raise ApiError(
            400,
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' is not a 'date-time'",
        ) from None


def _filter(call: NovaCall) -> Callable[[Record], bool]:
    req = call.req
    all_tenants = bool_param(req, "all_tenants")
    project = req.param("project_id") or req.param("tenant_id")
    if not all_tenants:
        project = call.project_id
    since = _time_param(call, "changes-since")
    before = _time_param(call, "changes-before") if call.version >= (2, 66) else None
    if since is not None and before is not None and before < since:
        raise ApiError(
            400, "The value of changes-since must be less than or equal to changes-before."
        )
    host, status = req.param("host"), req.param("status")
    low, high = since or 0.0, before or float("inf")
    show_deleted = since is not None or before is not None

    def keep(rec: Record) -> bool:
        doc = rec.doc
        return (
            (rec.deleted is None or show_deleted)
            and low <= rec.updated <= high
            and (project is None or doc["tenant_id"] == project)
            and (host is None or doc["OS-EXT-SRV-ATTR:host"] == host)
            and (status is None or doc["status"] == status.upper())
        )

    return keep


def _page(call: NovaCall) -> tuple[list[Record], int]:
    """The records of the requested page and the effective limit."""
    try:
        limit = parse_limit(call.req.param("limit"), MAX_LIMIT) or MAX_LIMIT
    except ValueError:
        raise ApiError(400, "Invalid input for query parameters limit.") from None
    marker = call.req.param("marker")
    keep = _filter(call)
    table = call.state.table("servers")
    if marker is not None and marker not in table:
        raise ApiError(400, f"marker [{marker}] not found")
    return take(table.scan(marker, newest_first=True), limit, keep), limit


def _listing(call: NovaCall, parts: list[bytes], page: list[Record], limit: int) -> Response:
    href = next_link(call.req, page, limit)
    extra = {"servers_links": [{"href": href, "rel": "next"}]} if href else {}
    return Response(200, json_list_body("servers", parts, extra))


def list_detail(call: NovaCall) -> Response:
    """``GET /servers/detail``."""
    encode = encoder(call, shape_of(call.version))
    with call.state.lock:
        page, limit = _page(call)
        parts = [encode(rec) for rec in page]
    return _listing(call, parts, page, limit)


def list_brief(call: NovaCall) -> Response:
    """``GET /servers``: id, name and links only."""
    base = call.base
    with call.state.lock:
        page, limit = _page(call)
        items = [
            {
                "id": rec.key,
                "name": rec.doc["name"],
                "links": [
                    {"href": f"{base}/v2.1/servers/{rec.key}", "rel": "self"},
                    {"href": f"{base}/servers/{rec.key}", "rel": "bookmark"},
                ],
            }
            for rec in page
        ]
    return _listing(call, [orjson.dumps(item) for item in items], page, limit)


def show(call: NovaCall, ident: str) -> Response:
    """``GET /servers/{id}``; 404 for unknown or deleted servers."""
    with call.state.lock:
        rec = call.state.live("servers", ident)
        if rec is None:
            raise ApiError(404, f"Instance {ident} could not be found.")
        server = orjson.loads(encoder(call, shape_of(call.version))(rec))
    if call.version >= (2, 71):
        server["server_groups"] = []
    return json_response(200, {"server": server})
