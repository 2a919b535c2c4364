"""The field normalisers every service's shapes share (synchronizer_plugins.fields)."""

from __future__ import annotations

import pytest

from synchronizer import timeutil
from synchronizer_plugins import fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2013-09-03T04:01:32Z", "2013-09-03T04:01:32.000000Z"),  # Nova API, versioned payloads
        ("2013-09-23T13:53:12.774549", "2013-09-23T13:53:12.000000Z"),  # Cinder, naive UTC
        ("2024-01-26T20:41:03.512345+00:00", "2024-01-26T20:41:03.000000Z"),  # Ironic
        ("2016-08-17 13:53:23+00:00", "2016-08-17T13:53:23.000000Z"),  # Nova legacy payloads
        ("2016-08-17T15:53:23+02:00", "2016-08-17T13:53:23.000000Z"),
        ("2013-09-03T04:01:32.999999Z", "2013-09-03T04:01:32.000000Z"),  # truncated, not rounded
        ("", None),
        (None, None),
    ],
)
def test_seconds_gives_utc_seconds_in_the_entity_timestamp_form(value, expected):
    """Every service's time form becomes UTC to the second, as YYYY-MM-DDTHH:MM:SS.000000Z."""
    assert fields.seconds(value) == expected


@pytest.mark.parametrize(
    "value", ["2013-09-03T04:01:32Z", "2016-08-17 13:53:23+00:00", "2016-08-17T15:53:23+02:00"]
)
def test_seconds_is_the_normalised_timestamp_to_the_second(value):
    """Exactly timeutil.normalize's form with the fraction zeroed: the two compare as strings."""
    assert fields.seconds(value) == timeutil.normalize(value)[:20] + "000000Z"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (12, "must be a string"),
        ("yesterday", "bad timestamp"),
        ("2024-13-01T00:00:00Z", "bad timestamp"),  # the fast path checks the date too
        ("2024-02-30T10:00:00", "bad timestamp"),
    ],
)
def test_seconds_rejects_what_is_not_a_timestamp(value, message):
    """A value that is not a real UTC time raises ValueError saying so."""
    with pytest.raises(ValueError, match=message):
        fields.seconds(value)
