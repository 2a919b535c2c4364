"""The one normalised shape of a ``heat.stack``, from the API or a notification.

Heat's stack list view (``GET /v1/{project}/stacks?global_tenant=True``) and
its ``orchestration.stack.*`` notification payload
(``heat.engine.api.format_notification_body``) describe a stack with
different names; both map onto:

=================  ===================================  ==========================
entity field       API stack                            notification payload
=================  ===================================  ==========================
key                ``id``                               id in ``stack_identity``
                                                        (``arn:openstack:heat::``
                                                        ``<project>:stacks/<name>/<id>``)
state              ``stack_status``                     ``state``
                   (``CREATE_COMPLETE``...)             (the same ``ACTION_STATUS``)
project            ``project`` (or the project in the   ``tenant_id``
                   ``self`` link)
``name``           ``stack_name``                       ``stack_name``
``description``    ``description``                      ``description``
``status_reason``  ``stack_status_reason``              ``state_reason``
``tags``           ``tags`` (sorted, ``[]`` if none)    ``tags``
``created_at``     ``creation_time``                    ``create_at``
``updated_at``     ``updated_time`` (volatile)          ``updated_at`` (volatile)
=================  ===================================  ==========================

``stack_identity`` is what Heat 27 sends, the bare stack id (older
releases and the samples of Heat's docs show the stack's ARN,
``arn:openstack:heat::<project>:stacks/<name>/<id>``): both are read.
``description``: a template without one lists as ``""`` in the API and as
Heat's default ``"No description"`` in notifications; both (and null) are
normalised to ``""``.

Timestamps are UTC at second precision (the API drops fractions).  No
parent: notifications do not say whether a stack is nested, so the parent
stack cannot be part of a shape both sides share.  ``updated_at`` is
volatile: it moves with every update, whose outcome ``state`` already shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib import parse

from synchronizer.model import Entity
from synchronizer.plugin_base import EntityDoc, Plugin
from synchronizer_plugins import fields

STACK = "heat.stack"
VOLATILE: frozenset[str] = frozenset({"updated_at"})

#: Heat's stack actions and statuses (heat/engine/stack.py): a state is ``<ACTION>_<STATUS>``.
ACTIONS: tuple[str, ...] = (
    "CREATE",
    "DELETE",
    "UPDATE",
    "ROLLBACK",
    "SUSPEND",
    "RESUME",
    "ADOPT",
    "SNAPSHOT",
    "CHECK",
    "RESTORE",
)
STATUSES: tuple[str, ...] = ("IN_PROGRESS", "FAILED", "COMPLETE")
STATES: tuple[str, ...] = tuple(f"{action}_{status}" for action in ACTIONS for status in STATUSES)

DOC = EntityDoc(
    type=STACK,
    summary="A Heat stack, of any project, nested stacks included.",
    key="stack UUID (`id`; the last part of `stack_identity` in notifications)",
    state="Heat's `<ACTION>_<STATUS>` (`stack_status`; `state` in notifications)",
    states=STATES,
    project="the project that owns the stack (`project`; `tenant_id` in notifications)",
    properties={
        "name": "stack name",
        "description": "description from its template",
        "status_reason": "why it is in its state (`stack_status_reason`)",
        "tags": "tags, sorted",
        "created_at": "creation time (UTC, to the second)",
        "updated_at": "time of its last update (UTC, to the second), or null",
    },
    volatile=VOLATILE,
)

_ARN = re.compile(r"arn:openstack:heat::(?P<project>[^:]*):stacks/(?P<name>[^/]+)/(?P<id>[^/]+)")
_LINK_PROJECT = re.compile(r"/v1/(?P<project>[^/]+)/stacks/")
# What Heat's templates say when they have no description (heat.engine.hot.template).
_NO_DESCRIPTION = frozenset({None, "", "No description"})


def from_api(plugin: Plugin, record: Any) -> Entity:
    """The entity of one API stack record; raises ValueError if it is unusable."""
    record = fields.mapping(record, "stack")
    return _build(
        plugin,
        key=fields.required_str(record, "id"),
        state=record.get("stack_status"),
        project=record.get("project") or _link_project(record.get("links")),
        properties={
            "name": record.get("stack_name"),
            "description": record.get("description"),
            "status_reason": record.get("stack_status_reason"),
            "tags": record.get("tags"),
            "created_at": record.get("creation_time"),
            "updated_at": record.get("updated_time"),
        },
    )


def from_payload(plugin: Plugin, payload: Any, timestamp: str) -> Entity:
    """The entity of one ``orchestration.stack.*`` payload; raises ValueError if malformed."""
    payload = fields.mapping(payload, "payload")
    key, arn_project = _identity(fields.required_str(payload, "stack_identity"))
    return _build(
        plugin,
        key=key,
        state=payload.get("state"),
        project=payload.get("tenant_id") or arn_project,
        properties={
            "name": payload.get("stack_name"),
            "description": payload.get("description"),
            "status_reason": payload.get("state_reason"),
            "tags": payload.get("tags"),
            "created_at": payload.get("create_at"),
            "updated_at": payload.get("updated_at"),
        },
        timestamp=timestamp,
    )


def _build(
    plugin: Plugin,
    *,
    key: str,
    state: Any,
    project: Any,
    properties: dict[str, Any],
    timestamp: str | None = None,
) -> Entity:
    if state is not None and not isinstance(state, str):
        raise ValueError(f"stack state must be a string, got {state!r}")
    properties["tags"] = _tags(properties["tags"])
    if properties["description"] in _NO_DESCRIPTION:
        properties["description"] = ""
    properties["created_at"] = fields.seconds(properties["created_at"])
    properties["updated_at"] = fields.seconds(properties["updated_at"])
    return plugin.entity(
        STACK,
        key,
        state=state,
        project=project if isinstance(project, str) and project else None,
        properties=properties,
        timestamp=timestamp,
    )


def _identity(value: str) -> tuple[str, str | None]:
    """(stack id, project or None) of a ``stack_identity``: a bare id or a stack ARN."""
    arn = _ARN.match(value)
    if arn is not None:
        return parse.unquote(arn.group("id")), parse.unquote(arn.group("project"))
    if value.startswith("arn:") or "/" in value or ":" in value:
        raise ValueError(f"stack_identity is neither a stack id nor a stack ARN: {value!r}")
    return value, None


def _tags(value: Any) -> list[str]:
    if isinstance(value, str):  # older Heat returned "a,b"
        value = [tag for tag in value.split(",") if tag]
    return fields.sorted_strings(value, "tags")


def _link_project(links: Any) -> str | None:
    for link in links if isinstance(links, list) else ():
        if isinstance(link, Mapping) and link.get("rel") == "self":
            match = _LINK_PROJECT.search(str(link.get("href", "")))
            if match:
                return parse.unquote(match.group("project"))
    return None
