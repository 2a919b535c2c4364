"""The ``nagios.service`` collector: Nagios Core service states from ``statusjson.cgi``.

Enable it as ``plugins = nagios.service`` and point it at the CGI::

    [nagios.service]
    url = https://nagios.example.com/nagios/cgi-bin/statusjson.cgi
    username = synchronizer
    password = ...
    host_type = nova.host
    cafile = /etc/ssl/certs/ca.pem

It asks ``?query=servicelist&details=true`` over HTTP(S) with basic auth
(``requests``; no OpenStack session: Nagios is not in the catalog).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import requests
from oslo_config import cfg

from synchronizer import timeutil
from synchronizer.errors import PermanentError, TransientError
from synchronizer.model import Entity
from synchronizer.plugin_base import CollectorPlugin, EntityDoc

LOG = logging.getLogger(__name__)

SERVICE = "nagios.service"
# statusjson format_version 0 service status bits (cgi/statusjson.h).
STATUS_CODES: dict[int, str] = {
    1: "PENDING",
    2: "OK",
    4: "WARNING",
    8: "UNKNOWN",
    16: "CRITICAL",
}
STATE_TYPES: dict[int, str] = {0: "SOFT", 1: "HARD"}
# Timers and check output move on every check of an unchanged service.
VOLATILE: frozenset[str] = frozenset(
    {"last_check", "next_check", "last_update", "plugin_output", "long_plugin_output", "perf_data"}
)
_FLAGS = (
    "problem_has_been_acknowledged",
    "is_flapping",
    "checks_enabled",
    "notifications_enabled",
)
_COUNTS = ("current_attempt", "max_attempts", "scheduled_downtime_depth")
_TIMES = ("last_state_change", "last_hard_state_change")
_VOLATILE_TIMES = ("last_check", "next_check", "last_update")
_VOLATILE_TEXT = ("plugin_output", "long_plugin_output", "perf_data")

_TIME = "(UTC ISO 8601; null when never)"
DOC = EntityDoc(
    type=SERVICE,
    summary="A service check of Nagios Core, on one monitored host.",
    key="`<host_name>/<service description>`",
    state="the Nagios service status",
    states=tuple(STATUS_CODES.values()),
    parent="nova.host",
    parent_meaning="the monitored host (`host_name`); its type is the `host_type` option, "
    "`nova.host` by default",
    properties={
        "host_name": "the monitored host's name, the parent's key",
        "description": "the service description",
        "state_type": "`SOFT` (still retrying) or `HARD`",
        "current_attempt": "the check attempt the status is from",
        "max_attempts": "attempts before a problem becomes HARD",
        "scheduled_downtime_depth": "how many scheduled downtimes cover it now (0: none)",
        "problem_has_been_acknowledged": "whether an operator acknowledged the problem",
        "is_flapping": "whether Nagios sees its status flapping",
        "checks_enabled": "whether active checks are enabled",
        "notifications_enabled": "whether Nagios sends notifications for it",
        "last_state_change": f"when the status last changed {_TIME}",
        "last_hard_state_change": f"when the HARD status last changed {_TIME}",
        "last_check": f"when it was last checked {_TIME}",
        "next_check": f"when it is checked next {_TIME}",
        "last_update": f"when Nagios last updated the record {_TIME}",
        "plugin_output": "the check's first line of output",
        "long_plugin_output": "the check's further output lines",
        "perf_data": "the check's performance data",
    },
    volatile=VOLATILE,
)


def status_name(value: Any) -> str:
    """The normalised Nagios status of a numeric code (1, 2, 4, 8, 16) or a name."""
    if isinstance(value, int) and not isinstance(value, bool) and value in STATUS_CODES:
        return STATUS_CODES[value]
    if isinstance(value, str) and value.upper() in STATUS_CODES.values():
        return value.upper()
    raise ValueError(f"unknown Nagios service status {value!r}")


def _millis(value: Any) -> str | None:
    """statusjson times are epoch milliseconds; 0 means never."""
    if not value:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"time must be epoch milliseconds, got {value!r}")
    return timeutil.normalize(value / 1000.0)


def _state_type(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return STATE_TYPES.get(value)
    return value.upper() if isinstance(value, str) else None


def service_properties(record: Mapping[str, Any], host: str, description: str) -> dict[str, Any]:
    """The properties of one service record (volatile ones included)."""
    props: dict[str, Any] = {"host_name": host, "description": description}
    props["state_type"] = _state_type(record.get("state_type"))
    props.update({flag: record.get(flag) for flag in _FLAGS})
    props.update({count: record.get(count) for count in _COUNTS})
    props.update({name: _millis(record.get(name)) for name in (*_TIMES, *_VOLATILE_TIMES)})
    props.update({name: record.get(name) for name in _VOLATILE_TEXT})
    return props


class ServiceCollector(CollectorPlugin):
    """Polls Nagios Core's ``statusjson.cgi`` and yields ``nagios.service`` entities.

    Normalised shape: key ``<host_name>/<service description>``; state the
    Nagios status ``OK``, ``WARNING``, ``CRITICAL``, ``UNKNOWN`` or
    ``PENDING`` (from format_version 0's codes 2, 4, 16, 8, 1, or from
    names); no project; parent ``(<host_type>, host_name)``, the monitored
    host (``nova.host`` by default); properties ``host_name``,
    ``description``, ``state_type`` (``SOFT``/``HARD``), ``current_attempt``,
    ``max_attempts``, ``scheduled_downtime_depth``,
    ``problem_has_been_acknowledged``, ``is_flapping``, ``checks_enabled``,
    ``notifications_enabled``, ``last_state_change`` and
    ``last_hard_state_change`` (UTC ISO 8601); volatile (never a cause of an
    update): ``last_check``, ``next_check``, ``last_update``,
    ``plugin_output``, ``long_plugin_output``, ``perf_data``.

    Any HTTP error, timeout, non-JSON answer or statusjson error result
    raises (the listing is then incomplete); a 401 is retried, a 403 is permanent.  A
    service record with an unknown status keeps its entity's last good state
    (``skip``).  The
    password never appears in logs or errors.  Threading: one worker thread
    uses an instance.
    """

    name: ClassVar[str] = "nagios.service"
    entity_types: ClassVar[tuple[str, ...]] = (SERVICE,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (DOC,)
    volatile_properties: ClassVar[frozenset[str]] = VOLATILE

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            cfg.URIOpt(
                "url",
                schemes=["http", "https"],
                help="URL of Nagios Core's statusjson.cgi.",
            ),
            cfg.StrOpt("username", help="HTTP basic auth user (none: no auth)."),
            cfg.StrOpt("password", secret=True, help="HTTP basic auth password."),
            cfg.FloatOpt("timeout", default=30.0, min=0.1, help="Seconds per request."),
            cfg.BoolOpt("verify", default=True, help="Verify the server's TLS certificate."),
            cfg.StrOpt("cafile", help="CA bundle to verify the server's TLS certificate."),
            cfg.StrOpt(
                "host_type",
                default="nova.host",
                help="Entity type of the monitored hosts (the services' parent).",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        self._session: requests.Session | None = None

    def available(self) -> bool | str:
        return True if self.options.url else f"[{self.group}] url is not set"

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    @property
    def _http(self) -> requests.Session:
        # Created on first use, in the worker process that polls.
        if self._session is None:
            self._session = requests.Session()
            if self.options.username:
                self._session.auth = (self.options.username, self.options.password or "")
            self._session.verify = self.options.cafile or self.options.verify
        return self._session

    query: ClassVar[str] = "servicelist"

    def list_all(self) -> Iterator[Entity]:
        for host, services in self.status_list().items():
            if not isinstance(services, Mapping):
                raise TransientError(f"statusjson servicelist entry of {host!r} is not an object")
            for description, record in services.items():
                entity = self._convert(host, description, record)
                if entity is not None:
                    yield entity

    def status_list(self) -> Mapping[str, Any]:
        """``data.<query>`` of the statusjson answer to ``query`` (with details)."""
        body = self._fetch()
        result = body.get("result") or {}
        if result.get("type_code", 0) != 0:
            raise TransientError(
                f"statusjson error {result.get('type_code')}: {result.get('type_text')}"
            )
        records = (body.get("data") or {}).get(self.query)
        if not isinstance(records, Mapping):
            raise TransientError(f"statusjson answer has no data.{self.query} object")
        return records

    def _fetch(self) -> Mapping[str, Any]:
        params = {"query": self.query, "details": "true"}
        try:
            response = self._http.get(self.options.url, params=params, timeout=self.options.timeout)
        except requests.RequestException as exc:
            raise TransientError(f"Nagios statusjson request failed: {type(exc).__name__}") from exc
        if response.status_code == 401:
            # As for Keystone: a password changed on the Nagios side may be
            # fixed in the file next, without a restart.
            raise TransientError(
                "Nagios refused the credentials (HTTP 401): retried with back-off; "
                "check this plugin's username and password"
            )
        if response.status_code == 403:
            raise PermanentError("Nagios refused the user (HTTP 403): grant it the CGIs")
        if response.status_code != 200:
            raise TransientError(f"Nagios statusjson answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError("Nagios statusjson answer is not JSON") from exc
        if not isinstance(body, Mapping):
            raise TransientError("Nagios statusjson answer is not a JSON object")
        return body

    def _convert(self, host: str, description: str, record: Any) -> Entity | None:
        try:
            if not isinstance(record, Mapping):
                raise ValueError(f"service record is {type(record).__name__}, not an object")
            host = record.get("host_name") or host
            description = record.get("description") or description
            return self.entity(
                SERVICE,
                f"{host}/{description}",
                state=status_name(record.get("status")),
                parent=(self.options.host_type, host),
                properties=service_properties(record, host, description),
            )
        except ValueError as exc:
            self.skip(SERVICE, f"{host}/{description}", str(exc))  # it keeps its last good state
            return None
