"""Microversion negotiation shared by Cinder and Ironic (Nova has its own).

A service asks for ``OpenStack-API-Version: <service> X.Y`` (or a legacy
header such as ``X-OpenStack-Ironic-API-Version``); ``latest`` means the
maximum, no header means the minimum, a version out of range is a 406::

    negotiate(req, "volume", (3, 0), (3, 71))  # -> (3, 0) without a header
"""

from __future__ import annotations

import re

from synchronizer_fakecloud.web import ApiError, Request

Version = tuple[int, int]
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)$")


def requested(req: Request, service: str, legacy: str | None = None) -> str | None:
    """The raw version a request asks of ``service``, or None."""
    for item in (req.header("OpenStack-API-Version") or "").split(","):
        parts = item.split()
        if len(parts) == 2 and parts[0].lower() == service:
            return parts[1]
    return req.header(legacy) if legacy else None


def negotiate(
    req: Request, service: str, low: Version, high: Version, legacy: str | None = None
) -> Version:
    """The version to serve; raise ApiError 400 (format) or 406 (range)."""
    wanted = requested(req, service, legacy)
    if wanted is None:
        return low
    if wanted.strip().lower() == "latest":
        return high
    match = _VERSION_RE.match(wanted.strip())
    if match is None:
        raise ApiError(400, f"Invalid API version {wanted}")
    version = (int(match.group(1)), int(match.group(2)))
    if not low <= version <= high:
        raise ApiError(
            406,
            f"Version {text(version)} was requested but the minor version "
            "is not supported by this service. The supported version range is: "
            f"[{text(low)}, {text(high)}].",
        )
    return version


def text(version: Version) -> str:
    """``(3, 71)`` -> ``"3.71"``."""
    return f"{version[0]}.{version[1]}"
