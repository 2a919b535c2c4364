"""Records of paged listings (synchronizer_plugins.paging.listing): strict about each page."""

import pytest

from synchronizer.errors import IncompleteListing
from synchronizer_plugins.paging import listing


def _records(pages):
    return list(
        listing(
            pages.__getitem__,
            "p1",
            lambda page: page.get("next") if isinstance(page, dict) else None,
            "items",
            lambda link: IncompleteListing(f"loops at {link}"),
        )
    )


def test_every_record_of_every_page_in_order():
    """Records come page after page, an empty list being an empty page."""
    pages = {
        "p1": {"items": [1, 2], "next": "p2"},
        "p2": {"items": [], "next": "p3"},
        "p3": {"items": [3]},
    }
    assert _records(pages) == [1, 2, 3]


@pytest.mark.parametrize(
    "broken",
    [
        {},  # a 200 whose body lacks the collection key
        {"items": None},
        {"items": {"a": 1}},
        {"items": "nope"},
        [],  # not an object at all
    ],
    ids=["missing", "null", "object", "string", "not-an-object"],
)
@pytest.mark.parametrize("where", ["p1", "p2"])
def test_a_page_without_its_collection_list_makes_the_listing_incomplete(broken, where):
    """A broken page never reads as an empty page: the listing raises, so nothing is deleted."""
    pages = {"p1": {"items": [1], "next": "p2"}, "p2": {"items": [2]}}
    pages[where] = broken
    with pytest.raises(IncompleteListing, match="items"):
        _records(pages)
