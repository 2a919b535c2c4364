"""Validation and normalisation of API record fields, shared by the plugins' shapes.

Each raises ``ValueError`` naming the field, which the plugins turn into an
incomplete listing or an ``InvalidNotification``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synchronizer import timeutil


def seconds(value: Any) -> str | None:
    """A timestamp normalised to UTC at second precision, or None.

    Services often drop the fraction of a second on one side (API or
    notification), so shapes compare timestamps to the second.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string, got {value!r}")
    try:
        return timeutil.normalize(value)[:19] + ".000000Z"
    except ValueError:
        raise ValueError(f"bad timestamp {value!r}") from None


def required_str(record: Mapping[str, Any], field: str) -> str:
    """``record[field]`` when it is a non-empty string."""
    value = record.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def mapping(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object, got {type(value).__name__}")
    return value
