"""Validation and normalisation of API record fields, shared by the plugins' shapes.

Each raises ``ValueError`` naming the field, which the plugins turn into an
incomplete listing or an ``InvalidNotification``.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from synchronizer import timeutil

# UTC forms OpenStack writes, with or without a fraction: what seconds() needs no parser for.
_UTC_SECONDS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|\+00:00)?$")


def seconds(value: Any) -> str | None:
    """A timestamp as ``YYYY-MM-DDTHH:MM:SS.000000Z`` (UTC, to the second), or None.

    The form of every entity timestamp (:func:`synchronizer.timeutil.normalize`),
    with the fraction zeroed: services often drop the fraction of a second
    on one side (API or notification), so shapes compare timestamps to the
    second.  Naive times are UTC, as OpenStack writes them.  Raises
    ValueError when the value is not a timestamp.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {value!r}")
    match = _UTC_SECONDS.match(value)
    try:
        if match:  # the usual UTC forms, without a general parse: polls convert 100k records
            datetime.datetime.fromisoformat(match.group(1))  # a real date and time?
            return match.group(1) + ".000000Z"
        return timeutil.normalize(value)[:19] + ".000000Z"
    except ValueError:
        raise ValueError(f"bad timestamp {value!r}") from None


def required_str(record: Mapping[str, Any], field: str) -> str:
    """``record[field]`` when it is a non-empty string."""
    value = record.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def sorted_strings(value: Any, field: str) -> list[str]:
    """A list of strings, sorted (its order means nothing); ``[]`` for None."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{field} must be a list of strings, got {value!r}")
    return sorted(value)


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object, got {type(value).__name__}")
    return value
