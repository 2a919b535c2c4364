"""The HTTP control API under ``/_control`` (JSON in, JSON out, no auth).

========  ================================  ===================================
method    path                              body / answer
========  ================================  ===================================
GET       /_control/health                  ``{"status": "ok", "counts": {..}}``
POST      /_control/reset                   forget everything
POST      /_control/populate                ``{"servers": N, "hosts": M, ...}``
POST      /_control/change                  ``{"kind", "fraction"|"count",
                                            "action", "seed"}`` -> keys
POST      /_control/purge                   ``{"kind": "servers"}``
GET       /_control/<kind>                  ``{"<kind>": [record, ...]}``
                                            (``?deleted=true`` adds tombstones)
POST      /_control/<kind>                  friendly fields -> 201 record
GET       /_control/<kind>/<key>            record (404 if unknown)
PATCH     /_control/<kind>/<key>            friendly fields -> record (PUT too)
DELETE    /_control/<kind>/<key>            204
POST      /_control/faults/<name>           ``fail_page``, ``fail``, ``delay``,
                                            ``corrupt``, ``keystone_down``,
                                            ``displace``, ``drop_next``,
                                            ``bad_record``, ``hang``,
                                            ``trickle``, ``clock_offset``: the
                                            Python method's keyword arguments
DELETE    /_control/faults                  disarm every fault
POST      /_control/tokens/expiry           ``{"seconds": 2}``
POST      /_control/tokens/revoke           invalidate every token
GET       /_control/stats                   ``{"counts": {"GET /path": n}}``
GET       /_control/stats/requests          the request log (``?service=``)
DELETE    /_control/stats                   forget statistics
========  ================================  ===================================

A record is ``{"kind", "key", "created", "updated", "deleted", "doc"}``
with epoch-second times. Keys are URL-encoded in paths (Nagios keys hold a
``;``). Bad input answers 400, unknown kinds or keys 404.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from synchronizer_fakecloud.web import Request, Response, json_response, parse_bool

if TYPE_CHECKING:
    from synchronizer_fakecloud.cloud import Cloud

_FAULTS = (
    "fail_page",
    "fail",
    "delay",
    "corrupt",
    "keystone_down",
    "displace",
    "drop_next",
    "bad_record",
    "hang",
    "trickle",
    "clock_offset",
)


def _record(view: Any) -> dict[str, Any]:
    return dataclasses.asdict(view)


class ControlService:
    """Serves ``/_control`` on behalf of a :class:`Cloud`. Threading: stateless."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._actions: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "health"): self._health,
            ("POST", "reset"): self._reset,
            ("POST", "populate"): self._populate,
            ("POST", "change"): self._change,
            ("POST", "purge"): self._purge,
            ("DELETE", "faults"): self._clear_faults,
            ("POST", "tokens/expiry"): self._token_expiry,
            ("POST", "tokens/revoke"): self._revoke,
            ("GET", "stats"): self._stats,
            ("GET", "stats/requests"): self._request_log,
            ("DELETE", "stats"): self._reset_stats,
        }

    def handle(self, req: Request) -> Response:
        """Answer one control request; errors become 400/404 JSON."""
        path = req.path.removeprefix("/_control").strip("/")
        try:
            return self._route(req, path)
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc}"})
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})

    def _route(self, req: Request, path: str) -> Response:
        action = self._actions.get((req.method, path))
        if action is not None:
            return action(req)
        if req.method == "POST" and path.startswith("faults/"):
            return self._fault(req, path.removeprefix("faults/"))
        kind, _, key = path.partition("/")
        if kind in self.cloud.state.kinds:
            return self._entity(req, kind, unquote(key)) if key else self._kind(req, kind)
        raise KeyError(path)

    def _kind(self, req: Request, kind: str) -> Response:
        cloud = self.cloud
        if req.method == "POST":
            key = cloud.create(kind, **_fields(req))
            return json_response(201, _record(cloud.record(kind, key)))
        if req.method != "GET":
            raise ValueError(f"{req.method} not allowed on /_control/{kind}")
        deleted = parse_bool(req.param("deleted"))
        views = [cloud.record(kind, key) for key in cloud.keys(kind, include_deleted=deleted)]
        return json_response(200, {kind: [_record(v) for v in views if v is not None]})

    def _entity(self, req: Request, kind: str, key: str) -> Response:
        cloud = self.cloud
        if req.method in ("PATCH", "PUT"):
            cloud.update(kind, key, **_fields(req))
        elif req.method == "DELETE":
            cloud.delete(kind, key)
            return Response(204)
        elif req.method != "GET":
            raise ValueError(f"{req.method} not allowed on a record")
        view = cloud.record(kind, key)
        if view is None:
            raise KeyError(f"{kind} {key}")
        return json_response(200, _record(view))

    def _fault(self, req: Request, name: str) -> Response:
        if name not in _FAULTS:
            raise KeyError(f"fault {name}")
        getattr(self.cloud, name)(**_fields(req))
        return json_response(200, {"armed": name})

    def _health(self, req: Request) -> Response:
        return json_response(200, {"status": "ok", "counts": self.cloud.state.counts()})

    def _reset(self, req: Request) -> Response:
        self.cloud.reset()
        return json_response(200, {"reset": True})

    def _populate(self, req: Request) -> Response:
        return json_response(200, {"created": self.cloud.populate(**_fields(req))})

    def _change(self, req: Request) -> Response:
        fields = _fields(req)
        kind = fields.pop("kind", "servers")
        keys = self.cloud.change(kind, **fields)
        return json_response(200, {"kind": kind, "changed": keys})

    def _purge(self, req: Request) -> Response:
        kind = _fields(req).get("kind", "servers")
        return json_response(200, {"purged": self.cloud.purge(kind)})

    def _clear_faults(self, req: Request) -> Response:
        self.cloud.clear_faults()
        return json_response(200, {"cleared": True})

    def _token_expiry(self, req: Request) -> Response:
        self.cloud.token_expiry(float(_fields(req)["seconds"]))
        return json_response(200, {"ttl": self.cloud.tokens.ttl})

    def _revoke(self, req: Request) -> Response:
        self.cloud.revoke_tokens()
        return json_response(200, {"revoked": True})

    def _stats(self, req: Request) -> Response:
        counts = self.cloud.stats.counts()
        return json_response(
            200,
            {
                "counts": counts,
                "total": sum(counts.values()),
                "tokens_issued": self.cloud.tokens_issued,
            },
        )

    def _request_log(self, req: Request) -> Response:
        records = self.cloud.requests(service=req.param("service"), path=req.param("path"))
        return json_response(200, {"requests": [dataclasses.asdict(r) for r in records]})

    def _reset_stats(self, req: Request) -> Response:
        self.cloud.reset_stats()
        return json_response(200, {"reset": True})


def _fields(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
