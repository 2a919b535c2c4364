"""Paging with one page read ahead (synchronizer_plugins.paging.read_ahead), without HTTP."""

import threading

import pytest

from synchronizer.errors import IncompleteListing, TransientError
from synchronizer_plugins.paging import read_ahead

LINKS = {"p1": "p2", "p2": "p3", "p3": None}


def nxt(page):
    return page["next"]


def loop_error(link):
    return IncompleteListing(f"loops at {link}")


def test_pages_come_in_order_and_the_next_is_asked_for_meanwhile():
    asked = []
    second_asked = threading.Event()

    def fetch(link):
        asked.append(link)
        if link == "p2":
            second_asked.set()
        return {"id": link, "next": LINKS[link]}

    pages = read_ahead(fetch, "p1", nxt, loop_error)
    first = next(pages)
    assert first["id"] == "p1"
    assert second_asked.wait(5), "the second page was not asked for while the caller held the first"
    assert asked == ["p1", "p2"]
    assert [first["id"]] + [p["id"] for p in pages] == ["p1", "p2", "p3"]
    assert asked == ["p1", "p2", "p3"]


def test_a_failed_page_raises_after_the_pages_before_it():
    def fetch(link):
        if link == "p3":
            raise TransientError("503 on p3")
        return {"id": link, "next": LINKS[link]}

    got = []
    with pytest.raises(TransientError, match="p3"):
        got.extend(p["id"] for p in read_ahead(fetch, "p1", nxt, loop_error))
    assert got == ["p1", "p2"]


def test_a_link_back_raises_after_the_page_that_gave_it():
    links = {"p1": "p2", "p2": "p1"}
    pages = read_ahead(lambda link: {"id": link, "next": links[link]}, "p1", nxt, loop_error)
    got = []
    with pytest.raises(IncompleteListing, match="loops at p1"):
        got.extend(p["id"] for p in pages)
    assert got == ["p1", "p2"]


def test_each_page_is_announced_with_the_time_it_was_asked_for():
    """on_page(asked) comes before each page, with the time that page's request began."""
    began: dict[str, str] = {}
    heard: list[tuple[str, str]] = []

    def fetch(link):
        from synchronizer import timeutil

        began[link] = timeutil.now()
        return {"id": link, "next": LINKS[link]}

    pages = read_ahead(fetch, "p1", nxt, loop_error, on_page=lambda at: heard.append(at))
    heard.extend(page["id"] for page in pages)  # on_page appends between the pages
    # The stamp of each page is taken just before its fetch began, however long
    # the caller kept the page before (the next one was asked for meanwhile).
    stamps = [heard[i] for i in range(0, len(heard), 2)]
    assert heard[1::2] == ["p1", "p2", "p3"]
    assert all(stamp <= began[p] for stamp, p in zip(stamps, ["p1", "p2", "p3"], strict=True))
    assert stamps == sorted(stamps)
