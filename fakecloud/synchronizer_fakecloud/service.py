"""The skeleton of the fake APIs that list the store: Cinder, Ironic, Heat, Neutron.

Each is served under one URL prefix, answers its version documents there
without a token and lists a kind a page at a time: after ``marker``, at
most ``limit`` records that a filter keeps, in creation order or newest
first, each encoded while the state lock is held. :class:`ApiService` holds
that much; the routing, the error body, the headers and where a page puts
its next link (see :func:`~synchronizer_fakecloud.web.next_link`) are each
API's own::

    class CinderService(ApiService):
        name = "cinder"
        prefixes = ("/volume",)
        documents = ("", "/v3")  # no token needed below /volume

        def _list(self, req, version, detail):
            ...
            page, parts = self.page(
                req, "volumes", limit, keep, encode, newest_first=True, noun="Volume"
            )  # an unknown marker is a 404 "Volume <marker> could not be found."
"""

from __future__ import annotations

from collections.abc import Callable

from synchronizer_fakecloud.state import CloudState, Record
from synchronizer_fakecloud.web import Request, not_found, take


class ApiService:
    """A fake API under one prefix whose version documents need no token.

    A subclass sets ``name``, ``prefixes`` (one prefix) and ``documents``,
    the paths below the prefix (no trailing slash) that need no token, and
    adds ``listing`` and ``handle`` (see ``server.Service``).
    Threading: stateless; :meth:`page` reads the store under its lock.
    """

    name: str
    prefixes: tuple[str, ...]
    documents: tuple[str, ...] = ("",)

    def __init__(self, state: CloudState) -> None:
        self.state = state

    def subpath(self, req: Request) -> str:
        """The request's path below the prefix (``/v3/...`` of ``/volume/v3/...``)."""
        return req.path.removeprefix(self.prefixes[0])

    def root(self, req: Request) -> str:
        """The URL of the prefix, where the API's links start."""
        return req.base_url + self.prefixes[0]

    def public(self, req: Request) -> bool:
        """Version documents need no token."""
        return self.subpath(req).rstrip("/") in self.documents

    def page(
        self,
        req: Request,
        kind: str,
        limit: int | None,
        keep: Callable[[Record], bool],
        encode: Callable[[Record], bytes],
        *,
        newest_first: bool = False,
        noun: str | None = None,
    ) -> tuple[list[Record], list[bytes]]:
        """The records of one page of ``kind`` after the request's ``marker``, and their encodings.

        ``limit`` None means every record; a ``marker`` not in the table is
        a 404 ``<noun> <marker> could not be found.``, or, with no
        ``noun``, ignored: the listing starts over, as Heat's does.
        """
        marker = req.param("marker")
        with self.state.lock:
            table = self.state.table(kind)
            if marker is not None and marker not in table:
                if noun is not None:
                    raise not_found(noun, marker)
                marker = None
            page = take(table.scan(marker, newest_first=newest_first), limit, keep)
            return page, [encode(rec) for rec in page]
