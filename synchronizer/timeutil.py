"""UTC ISO 8601 observation times.

Every entity timestamp is normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` so
that timestamps of one entity compare correctly as strings, whatever form a
service used (``2016-08-19 10:20:59.279903`` from oslo.messaging, ``...+00:00``
from Nova, epoch seconds from Nagios)::

    >>> normalize("2016-08-19 10:20:59.279903")
    '2016-08-19T10:20:59.279903Z'
"""

from __future__ import annotations

import datetime

import iso8601

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """The current UTC time, normalised."""
    return datetime.datetime.now(datetime.UTC).strftime(_FORMAT)


def _is_normalized(value: str) -> bool:
    return len(value) == 27 and value[10] == "T" and value[-1] == "Z" and value[19] == "."


def _parse(value: str) -> datetime.datetime:
    """ISO 8601 into an aware datetime, UTC when it names no zone (OpenStack's habit)."""
    try:
        return iso8601.parse_date(value)
    except (iso8601.ParseError, TypeError) as exc:
        raise ValueError(str(exc)) from exc


def to_datetime(value: str) -> datetime.datetime:
    """Parse a normalised (or any ISO 8601) timestamp into an aware datetime."""
    return _parse(value).astimezone(datetime.UTC)


def normalize(value: str | float | datetime.datetime | None) -> str:
    """Return ``value`` as a normalised UTC ISO 8601 string.

    An empty value means "now".  Naive times are taken as UTC (OpenStack
    services send UTC without a zone).  Raises ValueError when unparseable.
    """
    if not value:
        return now()
    if isinstance(value, str):
        if _is_normalized(value):
            return value
        parsed = _parse(value.strip())
    elif isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, int | float):
        try:
            parsed = datetime.datetime.fromtimestamp(float(value), datetime.UTC)
        except (OverflowError, OSError) as exc:  # beyond what the platform's time_t holds
            raise ValueError(f"timestamp out of range: {str(value)[:40]}") from exc
    else:
        raise ValueError(f"unsupported timestamp {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC).strftime(_FORMAT)
