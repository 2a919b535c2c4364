"""Paged listings: every page in order, the next one read ahead, loops refused.

Free of HTTP (the caller's ``fetch`` does the request), so every collector
pages the same way whatever client it uses: keystoneauth adapters follow
``next`` links (:func:`next_link`), Nova's collectors pass markers
(:func:`next_marker`).  For example, over pages held in a dict::

    >>> pages = {"p1": {"items": [1, 2], "next": "p2"}, "p2": {"items": [3]}}
    >>> list(listing(pages.__getitem__, "p1", lambda page: page.get("next"), "items",
    ...              lambda link: RuntimeError(f"loops at {link}")))
    [1, 2, 3]

Read-ahead (:func:`read_ahead`): while the collector converts a page, a
helper thread already waits for the next one, so the service's time to build
a page overlaps the collector's work instead of adding to it (for 100,000
Nova servers that hides most of the conversion).

Observation times (``on_page``): each page's records are stamped with the
time that page was asked for, not the time the listing began.  A listing
of 100,000 servers takes seconds; a server that changed twice meanwhile
(a late notification of the first change, the second one shown by its
page) would otherwise look observed before that notification's event, and
the ledger would take the late notification's older state for the newer.
The request's time is a lower bound of when the service read the record:
a notification of an event before it never overrides the page; one of an
event after it does.
"""

from __future__ import annotations

import concurrent.futures
import urllib.parse
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, TypeVar

from oslo_config import cfg

from synchronizer import timeutil
from synchronizer.errors import IncompleteListing

__all__ = ["listing", "next_link", "next_marker", "page_size_option", "read_ahead"]

_Next = TypeVar("_Next", bound=Hashable)


def page_size_option(help_text: str) -> cfg.IntOpt:
    """The ``page_size`` option every paged collector has (1000 records, at least 1)."""
    return cfg.IntOpt("page_size", default=1000, min=1, help=help_text)


def read_ahead(
    fetch: Callable[[_Next], Any],
    first: _Next,
    follow: Callable[[Any], _Next | None],
    looping: Callable[[_Next], Exception],
    on_page: Callable[[str], None] | None = None,
) -> Iterator[Any]:
    """Every page of a listing, fetching the next one while the caller has this one.

    ``fetch(first)`` gives the first page; ``follow(page)`` what to fetch for
    the page after it (a URL, a marker), or None at the end.  A helper
    thread fetches that while the caller handles the current page, never
    more than one ahead.  A page that failed raises when the caller asks
    for it, after every page before it, as a plain loop would; a ``follow``
    seen before raises ``looping(it)`` there too.  Leaving the listing (it
    ends, fails or is abandoned) waits for a request still in flight, which
    the session's timeout bounds.  ``on_page(asked)`` is called before each
    page is yielded, with the time (normalised UTC) that page was asked for.
    """

    def timed(at: _Next) -> tuple[str, Any]:
        asked = timeutil.now()
        return asked, fetch(at)

    seen = {first}
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as ahead:
        asked, page = timed(first)
        while True:
            following = follow(page)
            pending = None
            if following is not None and following not in seen:
                seen.add(following)
                pending = ahead.submit(timed, following)
            if on_page is not None:
                on_page(asked)
            yield page
            if following is None:
                return
            if pending is None:
                raise looping(following)
            asked, page = pending.result()


def listing(
    fetch: Callable[[_Next], Mapping[str, Any]],
    first: _Next,
    follow: Callable[[Any], _Next | None],
    collection: str,
    looping: Callable[[_Next], Exception],
    on_page: Callable[[str], None] | None = None,
) -> Iterator[Any]:
    """Every record under ``collection`` of every page, as :func:`read_ahead` reads them.

    Strict: a page that is not an object, or whose ``collection`` is missing,
    null or not a list, raises :class:`IncompleteListing` (a broken 200 must
    never read as an empty, complete listing, which would delete
    everything); an empty list is an empty page.  Any failing page raises,
    so the caller's listing counts as incomplete.  ``on_page``: as for
    :func:`read_ahead` (a collector passes its ``observe``).
    """
    for page in read_ahead(fetch, first, follow, looping, on_page):
        records = page.get(collection) if isinstance(page, Mapping) else None
        if not isinstance(records, list):
            raise IncompleteListing(
                f"{collection}: a page has no {collection!r} list "
                f"(got {type(records).__name__ if records is not None else 'none'})"
            )
        yield from records


def next_link(links: Any, fallback: Any = None) -> str | None:
    """The ``rel: next`` href of a links list (or an explicit ``next`` URL)."""
    if isinstance(links, list):
        for link in links:
            if isinstance(link, dict) and link.get("rel") == "next":
                return link.get("href")
    return fallback if isinstance(fallback, str) else None


def next_marker(links: Any, records: list[Any]) -> str | None:
    """The marker of the next page, from a ``rel: next`` link, or None at the end.

    Only the marker is taken from the link (not its scheme and host, which a
    proxy in front of the service often gets wrong); a link without one
    means "after the last record".
    """
    href = next_link(links)
    if not href or not records:
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlparse(href).query)
    if query.get("marker"):
        return query["marker"][-1]
    last = records[-1]
    return str(last.get("id")) if isinstance(last, Mapping) and last.get("id") else None
