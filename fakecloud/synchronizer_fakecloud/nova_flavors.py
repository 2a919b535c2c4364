"""Nova flavors: the ``flavors`` kind and ``/flavors``, ``/flavors/detail``, ``/flavors/{id}``.

A fresh (or reset) cloud has the five ``m1.*`` flavors of a default
deployment, ids ``"1"`` to ``"5"``; tests add more (with extra specs, a
description, private or disabled) and delete them. A flavor's canonical
document is Nova's admin detail view at the highest microversion; what
changes with the microversion:

==========  ====================================================
2.55        ``description`` (detail, brief and show)
2.61        ``extra_specs`` (detail and show)
2.75        ``swap`` is ``0`` when there is none (``""`` before)
==========  ====================================================

Servers copy the flavor they are built with (as Nova keeps the instance's
own flavor), shown embedded from 2.47 and as ``{id, links}`` before (see
:mod:`synchronizer_fakecloud.nova_servers`); deleting a flavor changes no
server, and its id then answers 404, as Nova's API database has no soft
delete for flavors.

Listings are sorted by ``sort_key`` (``flavorid`` by default; ``name``,
``memory_mb``, ``vcpus``, ``root_gb``) and ``sort_dir``, paged by ``limit``
(at most 1000) and ``marker`` (a flavor id) with a ``flavors_links`` "next"
link whenever a page is full. ``is_public`` filters as for an admin: absent
means public flavors only, ``None`` means all, ``true``/``false`` one kind;
``minRam`` and ``minDisk`` set lower bounds.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import ApiError, Response, json_response, next_href, parse_limit

if TYPE_CHECKING:
    from synchronizer_fakecloud.nova import NovaCall

MAX_LIMIT = 1000
# name -> (id, vcpus, ram MiB, disk GiB): the flavors of a default deployment.
DEFAULTS = {
    "m1.tiny": ("1", 1, 512, 1),
    "m1.small": ("2", 1, 2048, 20),
    "m1.medium": ("3", 2, 4096, 40),
    "m1.large": ("4", 4, 8192, 80),
    "m1.xlarge": ("5", 8, 16384, 160),
}
EPHEMERAL = "OS-FLV-EXT-DATA:ephemeral"
DISABLED = "OS-FLV-DISABLED:disabled"
IS_PUBLIC = "os-flavor-access:is_public"
_ALIASES = {"ephemeral": EPHEMERAL, "disabled": DISABLED, "is_public": IS_PUBLIC}
_SORT_KEYS = {
    "flavorid": lambda rec: rec.key,
    "name": lambda rec: rec.doc["name"],
    "memory_mb": lambda rec: rec.doc["ram"],
    "vcpus": lambda rec: rec.doc["vcpus"],
    "root_gb": lambda rec: rec.doc["disk"],
}


def embedded(doc: Doc) -> dict[str, Any]:
    """The copy of a flavor a server embeds (2.47+)."""
    return {
        "vcpus": doc["vcpus"],
        "ram": doc["ram"],
        "disk": doc["disk"],
        "ephemeral": doc[EPHEMERAL],
        "swap": doc["swap"],
        "original_name": doc["name"],
        "extra_specs": dict(doc["extra_specs"]),
    }


class FlavorKind:
    """The ``flavors`` kind, keyed by flavor id.

    Friendly fields: ``id`` (a UUID when absent, as Nova's ``auto``),
    ``name`` (unique among flavors), ``vcpus``, ``ram`` (MiB), ``disk``
    (GiB), ``ephemeral`` (GiB), ``swap`` (MiB), ``rxtx_factor``,
    ``is_public``, ``disabled``, ``description``, ``extra_specs``; other keys
    of the API document are taken verbatim. Deleting a flavor removes it.
    """

    name = "flavors"
    tombstones = False

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new flavor document; ValueError when the name is taken."""
        flavor_id = str(fields.pop("id", None) or uuid.uuid4())
        name = fields.pop("name", None) or f"flavor-{flavor_id[:8]}"
        if find(state, name) is not None:
            raise ValueError(f"Flavor with name {name} already exists.")
        doc = {
            "id": flavor_id,
            "name": name,
            "ram": fields.pop("ram", 512),
            "disk": fields.pop("disk", 1),
            "swap": fields.pop("swap", 0),
            EPHEMERAL: 0,
            DISABLED: False,
            "vcpus": fields.pop("vcpus", 1),
            IS_PUBLIC: True,
            "rxtx_factor": fields.pop("rxtx_factor", 1.0),
            "description": fields.pop("description", None),
            "extra_specs": dict(fields.pop("extra_specs", None) or {}),
        }
        doc = self._merge(doc, fields)
        return flavor_id, doc, {"embedded": embedded(doc)}

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The flavor after an update (description, extra specs, access...)."""
        doc = self._merge(dict(rec.doc), fields)
        return doc, {**rec.meta, "embedded": embedded(doc)}

    @staticmethod
    def _merge(doc: Doc, fields: Doc) -> Doc:
        for key, value in fields.items():
            doc[_ALIASES.get(key, key)] = value
        return doc

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Flavors keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Servers keep their own copy of a deleted flavor, as in Nova."""


def seed(state: CloudState) -> None:
    """Create the default flavors (on a fresh or reset cloud)."""
    state.create_many(
        "flavors",
        (
            {"id": fid, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk}
            for name, (fid, vcpus, ram, disk) in DEFAULTS.items()
        ),
    )


def find(state: CloudState, name: str) -> Record | None:
    """The flavor with this name, else the one with this id, else None."""
    with state.lock:
        table = state.table("flavors")
        for rec in table.records():
            if rec.doc["name"] == name:
                return rec
        return table.get(name)


# -- the API -----------------------------------------------------------------


def _links(call: NovaCall, flavor_id: str) -> list[dict[str, str]]:
    return [
        {"href": f"{call.base}/v2.1/flavors/{flavor_id}", "rel": "self"},
        {"href": f"{call.base}/flavors/{flavor_id}", "rel": "bookmark"},
    ]


def render(call: NovaCall, doc: Doc) -> dict[str, Any]:
    """A flavor's detail view at the call's microversion."""
    item = {**doc, "links": _links(call, doc["id"])}
    if call.version < (2, 55):
        del item["description"]
    if call.version < (2, 61):
        del item["extra_specs"]
    if call.version < (2, 75):
        item["swap"] = doc["swap"] or ""
    item["rxtx_factor"] = doc["rxtx_factor"] or ""
    return item


def _brief(call: NovaCall, doc: Doc) -> dict[str, Any]:
    item = {"id": doc["id"], "name": doc["name"], "links": _links(call, doc["id"])}
    if call.version >= (2, 55):
        item["description"] = doc["description"]
    return item


def _is_public(value: str | None) -> bool | None:
    if value is None:
        return True
    lowered = value.strip().lower()
    if lowered == "none":
        return None
    if lowered in ("1", "t", "true", "on", "y", "yes"):
        return True
    if lowered in ("0", "f", "false", "off", "n", "no"):
        return False
    raise ApiError(400, f"Invalid is_public filter [{value}]")


def _int_param(call: NovaCall, name: str) -> int:
    value = call.req.param(name)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        raise ApiError(400, f"Invalid {name} filter [{value}]") from None


def _matching(call: NovaCall) -> list[Record]:
    """Every flavor the query's filters keep, in the query's order."""
    req = call.req
    public = _is_public(req.param("is_public"))
    min_ram, min_disk = _int_param(call, "minRam"), _int_param(call, "minDisk")
    sort_key, sort_dir = req.param("sort_key") or "flavorid", req.param("sort_dir") or "asc"
    if sort_key not in _SORT_KEYS or sort_dir not in ("asc", "desc"):
        raise ApiError(400, f"Invalid sort_key [{sort_key}] or sort_dir [{sort_dir}]")
    kept = [
        rec
        for rec in call.state.table("flavors").records()
        if (public is None or rec.doc[IS_PUBLIC] is public)
        and rec.doc["ram"] >= min_ram
        and rec.doc["disk"] >= min_disk
    ]
    kept.sort(key=lambda rec: (_SORT_KEYS[sort_key](rec), rec.key), reverse=sort_dir == "desc")
    return kept


def _page(call: NovaCall) -> tuple[list[Record], int]:
    try:
        limit = parse_limit(call.req.param("limit"), MAX_LIMIT) or MAX_LIMIT
    except ValueError:
        raise ApiError(400, "Invalid input for query parameters limit.") from None
    kept = _matching(call)
    marker = call.req.param("marker")
    start = 0
    if marker is not None:
        keys = [rec.key for rec in kept]
        if marker not in keys:
            raise ApiError(400, f"marker [{marker}] not found")
        start = keys.index(marker) + 1
    return kept[start : start + limit], limit


def _listing(call: NovaCall, items: list[dict[str, Any]], limit: int) -> Response:
    body: dict[str, Any] = {"flavors": items}
    if items and len(items) == limit:
        body["flavors_links"] = [{"href": next_href(call.req, items[-1]["id"]), "rel": "next"}]
    return json_response(200, body)


def list_detail(call: NovaCall) -> Response:
    """``GET /flavors/detail``."""
    with call.state.lock:
        page, limit = _page(call)
        items = [render(call, rec.doc) for rec in page]
    return _listing(call, items, limit)


def list_brief(call: NovaCall) -> Response:
    """``GET /flavors``: id, name, links (and description from 2.55)."""
    with call.state.lock:
        page, limit = _page(call)
        items = [_brief(call, rec.doc) for rec in page]
    return _listing(call, items, limit)


def show(call: NovaCall, ident: str) -> Response:
    """``GET /flavors/{id}``; 404 for an unknown or deleted flavor."""
    with call.state.lock:
        rec = call.state.live("flavors", ident)
        if rec is None:
            raise ApiError(404, f"Flavor {ident} could not be found.")
        item = render(call, rec.doc)
    return json_response(200, {"flavor": item})
