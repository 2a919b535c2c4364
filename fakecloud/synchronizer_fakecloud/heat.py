"""Fake Heat (orchestration) at ``/heat``: the ``stacks`` kind.

The catalog URL is ``/heat/v1/{project_id}``. ``GET .../stacks`` lists the
caller's project's stacks, or every project's with ``global_tenant=true``
(each stack then carries ``project``), newest first. Nested stacks (with a
``parent``) are listed only with ``show_nested=true``. Paging is opt-in:
without ``limit`` everything comes back; with it, a top-level ``links``
``next`` entry appears when the page is full. As in Heat, an unknown
``marker`` is ignored and the listing starts over, so a client walking
pages while the marker stack is deleted sees records again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from synchronizer_fakecloud import clock
from synchronizer_fakecloud.service import ApiService
from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import (
    ApiError,
    Request,
    Response,
    bool_param,
    encoded,
    json_list_body,
    json_response,
    limit_param,
    next_link,
    request_id,
)

_OUTCOMES = {"COMPLETE": "completed successfully", "FAILED": "failed", "IN_PROGRESS": "started"}
_TITLES = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}


class StackKind:
    """The ``stacks`` kind.

    Friendly fields: ``id``, ``name`` (``stack_name``), ``project_id``,
    ``status`` (``stack_status``, e.g. ``UPDATE_COMPLETE``; the reason and
    ``updated_time`` follow), ``parent``, ``owner``, ``tags``,
    ``description``; other keys verbatim. Deleting removes the stack.
    """

    name = "stacks"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new ``CREATE_COMPLETE`` stack."""
        stack_id = fields.pop("id", None) or str(uuid.uuid4())
        name = fields.pop("name", None) or fields.pop("stack_name", None) or f"stack-{stack_id[:8]}"
        doc = {
            "id": stack_id,
            "stack_name": name,
            "description": fields.pop("description", ""),
            "stack_status": "CREATE_COMPLETE",
            "stack_status_reason": "Stack CREATE completed successfully",
            "creation_time": clock.heat_time(now),
            "updated_time": None,
            "deletion_time": None,
            "stack_owner": fields.pop("owner", None) or state.context.get("username"),
            "parent": fields.pop("parent", None),
            "stack_user_project_id": uuid.uuid4().hex,
            "tags": fields.pop("tags", None),
            "project": fields.pop("project_id", None) or state.context["project_id"],
        }
        doc.update(self._status(fields))
        doc.update(fields)
        return stack_id, doc, {}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The stack after an update; ``updated_time`` moves."""
        if "name" in fields:
            fields["stack_name"] = fields.pop("name")
        doc = {**rec.doc, **self._status(fields), **fields, "updated_time": clock.heat_time(now)}
        return doc, rec.meta

    @staticmethod
    def _status(fields: Doc) -> Doc:
        status = fields.pop("status", None) or fields.pop("stack_status", None)
        if status is None:
            return {}
        action, _, result = status.partition("_")
        outcome = _OUTCOMES.get(result, result.lower())
        return {
            "stack_status": status,
            "stack_status_reason": fields.pop("stack_status_reason", f"Stack {action} {outcome}"),
        }

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Stacks keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Nested stacks are left as they are."""


def error(status: int, message: str) -> Response:
    """Heat's error body."""
    title = _TITLES.get(status, "Internal Server Error")
    return json_response(
        status,
        {
            "code": status,
            "title": title,
            "explanation": message,
            "error": {"message": message, "type": title.replace(" ", ""), "traceback": None},
        },
    )


class HeatService(ApiService):
    """The orchestration API of the fake cloud. Threading: stateless."""

    name = "heat"
    prefixes = ("/heat",)

    def listing(self, req: Request) -> str | None:
        """``stacks`` for listing GETs."""
        return "stacks" if req.method == "GET" and self._is_listing(req) else None

    @staticmethod
    def _is_listing(req: Request) -> bool:
        parts = req.path.removeprefix("/heat/").rstrip("/").split("/")
        return len(parts) == 3 and parts[0] == "v1" and parts[2] == "stacks"

    def handle(self, req: Request) -> Response:
        """Route one request."""
        if self.public(req):
            return json_response(
                300,
                {
                    "versions": [
                        {
                            "status": "CURRENT",
                            "id": "v1.0",
                            "links": [{"href": self.root(req) + "/v1/", "rel": "self"}],
                        }
                    ]
                },
            )
        if not self._is_listing(req):
            return error(404, "The resource could not be found.")
        if req.method != "GET":
            return error(405, "The method is not allowed for this resource.")
        try:
            resp = self._list(req)
        except ApiError as exc:
            return error(exc.status, exc.message)
        resp.headers["x-openstack-request-id"] = request_id()
        return resp

    def _list(self, req: Request) -> Response:
        everyone = bool_param(req, "global_tenant")
        keep = _filter(None if everyone else req.project_id, bool_param(req, "show_nested"))
        limit = limit_param(req, None)
        render, key = _renderer(self.root(req), everyone), ("stack", req.base_url, everyone)
        page, parts = self.page(
            req, "stacks", limit, keep, lambda rec: encoded(rec, key, render), newest_first=True
        )
        href = next_link(req, page, limit)
        extra = {"links": [{"rel": "next", "href": href}]} if href else {}
        return Response(200, json_list_body("stacks", parts, extra))


def _filter(project: str | None, nested: bool) -> Callable[[Record], bool]:
    def keep(rec: Record) -> bool:
        return (project is None or rec.doc["project"] == project) and (
            nested or rec.doc["parent"] is None
        )

    return keep


def _renderer(base: str, with_project: bool) -> Callable[[Record], dict[str, Any]]:
    def render(rec: Record) -> dict[str, Any]:
        out = dict(rec.doc)
        project = out["project"] if with_project else out.pop("project")
        href = f"{base}/v1/{project}/stacks/{out['stack_name']}/{rec.key}"
        out["links"] = [{"href": href, "rel": "self"}]
        return out

    return render
