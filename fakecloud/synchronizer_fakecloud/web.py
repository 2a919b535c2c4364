"""HTTP primitives shared by the fake services: request, response, paging.

A service is a plain object with a ``handle(request) -> Response`` method;
it never touches sockets. :class:`Request` is what the server parsed,
:class:`Response` is what it will write. Bodies are bytes encoded with
orjson; :func:`json_list_body` splices pre-encoded records into a listing
so that a page of cached records costs a join, not an encode.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

if TYPE_CHECKING:
    from synchronizer_fakecloud.keystone import TokenInfo
    from synchronizer_fakecloud.state import Record

JSON = "application/json"
_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


class ApiError(Exception):
    """An error answer, raised inside a service and turned into its body.

    Internal control flow of the fake services: the service that raised it
    renders it in its own error format; it never leaves the server.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed HTTP request.

    ``path`` is the full URL path (no query); ``query`` keeps every value of
    every parameter in order; ``headers`` keys are lower-case; ``base_url``
    is the server's own ``http://host:port``; ``token`` is set by the server
    once an ``X-Auth-Token`` has been validated.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    base_url: str
    token: TokenInfo | None = None

    def param(self, name: str) -> str | None:
        """First value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def project_id(self) -> str | None:
        """The project of the validated token, or None."""
        return self.token.project_id if self.token else None

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name, or None."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body decoded as JSON; raise ValueError if it is not."""
        try:
            return orjson.loads(self.body or b"{}")
        except orjson.JSONDecodeError as exc:
            raise ValueError("request body is not JSON") from exc

    def with_token(self, token: TokenInfo | None) -> Request:
        """A copy of this request carrying a validated token."""
        return dataclasses.replace(self, token=token)


@dataclass(slots=True)
class Response:
    """What a service answers: status, headers and an encoded body.

    ``disconnect_after`` (bytes) asks the server to drop the connection
    after writing that much of the body; ``refuse`` asks it to close the
    connection without answering at all; ``trickle`` (seconds) to write the
    body one byte at a time, that long apart.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    disconnect_after: int | None = None
    refuse: bool = False
    trickle: float = 0.0


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Encode a payload as a JSON response."""
    return Response(status, orjson.dumps(payload), dict(headers or {}))


def json_list_body(name: str, parts: Iterable[bytes], extra: Mapping[str, Any]) -> bytes:
    """``{"<name>": [<parts>], <extra>}`` from pre-encoded list items.

    The items are copied once, into the body (no intermediate join).
    """
    chunks = [b'{"', name.encode(), b'":[']
    for index, part in enumerate(parts):
        if index:
            chunks.append(b",")
        chunks.append(part)
    chunks.append(b"]")
    for key, value in extra.items():
        chunks += [b',"', key.encode(), b'":', orjson.dumps(value)]
    chunks.append(b"}")
    return b"".join(chunks)


def encoded(rec: Record, shape: Any, render: Callable[[Record], Any]) -> bytes:
    """The record rendered for ``shape``, encoded once and cached on it."""
    data = rec.cache.get(shape)
    if data is None:
        data = rec.cache[shape] = orjson.dumps(render(rec))
    return data


def request_id() -> str:
    """A fresh ``req-<uuid>`` request id, as every OpenStack API returns."""
    return f"req-{uuid.uuid4()}"


def parse_bool(value: str | None, default: bool = False) -> bool:
    """oslo's ``bool_from_string`` strictness: raise ValueError if unclear.

    An empty value (``?all_tenants``) means true, as Nova reads it.
    """
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered == "" or lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"Unrecognized value '{value}', acceptable values are: {_TRUE}")


def bool_param(req: Request, name: str) -> bool:
    """A boolean query parameter (false when absent); 400 when unclear."""
    try:
        return parse_bool(req.param(name))
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def parse_limit(value: str | None, max_limit: int | None) -> int | None:
    """A page size: the requested one capped by ``max_limit``.

    None or 0 means "no limit asked", giving ``max_limit`` (which may be
    None for APIs without a cap). Raise ValueError for a negative or
    non-integer value.
    """
    if value is None:
        return max_limit
    limit = int(value)
    if limit < 0:
        raise ValueError("limit must be >= 0")
    if limit == 0:
        return max_limit
    return limit if max_limit is None else min(limit, max_limit)


def limit_param(req: Request, max_limit: int | None) -> int | None:
    """The ``limit`` query parameter read by :func:`parse_limit`; 400 when invalid."""
    try:
        return parse_limit(req.param("limit"), max_limit)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def not_found(noun: str, ident: str) -> ApiError:
    """The 404 of an unknown record: ``Volume <ident> could not be found.``"""
    return ApiError(404, f"{noun} {ident} could not be found.")


def take(
    records: Iterator[Record], limit: int | None, keep: Callable[[Record], bool]
) -> list[Record]:
    """The first ``limit`` records (all if None) that ``keep`` accepts."""
    page: list[Record] = []
    for rec in records:
        if keep(rec):
            page.append(rec)
            if limit is not None and len(page) >= limit:
                break
    return page


def next_href(req: Request, marker: str, drop: Iterable[str] = ()) -> str:
    """The request's own URL with ``marker`` replaced: a "next" link."""
    params = [(k, v) for k, vs in req.query.items() if k != "marker" for v in vs]
    params = [(k, v) for k, v in params if k not in set(drop)]
    params.append(("marker", marker))
    return f"{req.base_url}{req.path}?{urlencode(params)}"


def next_link(
    req: Request, page: list[Record], limit: int | None, drop: Iterable[str] = ()
) -> str | None:
    """The "next" link after a full page (``limit`` records), else None."""
    if page and len(page) == limit:
        return next_href(req, page[-1].key, drop)
    return None
