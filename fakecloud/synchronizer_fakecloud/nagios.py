"""Fake Nagios Core 4 ``statusjson.cgi``: the ``nagios_services`` and ``nagios_hosts`` kinds.

Served at ``/nagios/cgi-bin/statusjson.cgi`` behind HTTP basic auth (401
with ``WWW-Authenticate: Basic realm="Nagios Access"`` otherwise). Queries:
``servicelist`` (``details=true`` for full records, else status codes;
``hostname`` and ``servicedescription`` select), ``service``, ``hostlist``
(``details=true`` likewise) and ``host``. The body is
``{"format_version": 0, "result": {...}, "data": {...}}`` with
``data.servicelist`` = ``{host_name: {description: details}}`` and
``data.hostlist`` = ``{name: details}`` (a host record names itself
``name``, not ``host_name``, as Nagios 4.4 prints it).

Numbers are Nagios' own: ``status`` is a bit (1 pending, 2 ok, 4 warning,
8 unknown, 16 critical; for hosts 1 pending, 2 up, 4 down, 8 unreachable),
``last_hard_state`` a state (0 ok, 1 warning, 2 critical, 3 unknown),
``state_type`` 0 soft / 1 hard, and every time is milliseconds since the
epoch (0 when never). ``last_check``,
``next_check`` and ``last_update`` move on every request (volatile);
``last_state_change`` moves only when the status changes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synchronizer_fakecloud.state import CloudState, Doc, Record
from synchronizer_fakecloud.web import Request, Response, json_response

PATH = "/nagios/cgi-bin/statusjson.cgi"
STATUS_CODES = {"PENDING": 1, "OK": 2, "WARNING": 4, "UNKNOWN": 8, "CRITICAL": 16}
_STATES = {2: 0, 4: 1, 16: 2, 8: 3, 1: 0}
_LAST_TIME = {
    2: "last_time_ok",
    4: "last_time_warning",
    16: "last_time_critical",
    8: "last_time_unknown",
}
_OUTPUT = {
    2: "OK - %s is fine",
    4: "WARNING - %s is degraded",
    16: "CRITICAL - %s is failing",
    8: "UNKNOWN - %s state unknown",
    1: "(Service check scheduled for %s)",
}
_CHECK_INTERVAL = 300
_TEMPLATE: Doc = {
    "long_plugin_output": "",
    "perf_data": "",
    "max_attempts": 3,
    "current_attempt": 1,
    "has_been_checked": True,
    "should_be_scheduled": True,
    "check_options": 0,
    "check_type": 0,
    "checks_enabled": True,
    "state_type": 1,
    "last_notification": 0,
    "next_notification": 0,
    "no_more_notifications": False,
    "notifications_enabled": True,
    "problem_has_been_acknowledged": False,
    "acknowledgement_type": 0,
    "current_notification_number": 0,
    "accept_passive_checks": True,
    "event_handler_enabled": True,
    "flap_detection_enabled": True,
    "is_flapping": False,
    "percent_state_change": 0.0,
    "latency": 0.0,
    "execution_time": 0.0,
    "scheduled_downtime_depth": 0,
    "process_performance_data": True,
    "obsess": True,
}
_TIME_KEYS = (
    "last_state_change",
    "last_hard_state_change",
    "last_time_ok",
    "last_time_warning",
    "last_time_unknown",
    "last_time_critical",
    "last_notification",
    "next_notification",
)


@dataclass(frozen=True, slots=True)
class _Statuses:
    """The status bits of services or of hosts, and the keys a change of status sets.

    ``codes`` maps names to bits, ``states`` bits to ``last_hard_state``,
    ``last_time`` bits to the time key they move (else ``default``);
    ``output`` is the plugin output of a bit for a name; ``times`` are the
    keys printed in milliseconds.
    """

    what: str
    codes: dict[str, int]
    states: dict[int, int]
    last_time: dict[int, str]
    default: str
    output: Callable[[int, str], str]
    times: tuple[str, ...]

    def code(self, value: Any) -> int:
        """A status name (``CRITICAL``) or bit (16) as the status bit."""
        if isinstance(value, int) and value in self.states:
            return value
        try:
            return self.codes[str(value).upper()]
        except KeyError:
            raise ValueError(
                f"unknown Nagios {self.what} {value!r}, expected one of {sorted(self.codes)}"
            ) from None

    def keys(self, code: int, name: str, now: float, fields: Doc) -> Doc:
        """The keys a change to ``code`` sets; pops ``output`` from ``fields``."""
        return {
            "status": code,
            "last_hard_state": self.states[code],
            "last_state_change": now,
            "last_hard_state_change": now,
            self.last_time.get(code, self.default): now,
            "plugin_output": fields.pop("output", None) or self.output(code, name),
        }


_SERVICES = _Statuses(
    "status",
    STATUS_CODES,
    _STATES,
    _LAST_TIME,
    "last_time_ok",
    lambda code, description: _OUTPUT[code] % description,
    _TIME_KEYS,
)

HOST_STATUS_CODES = {"PENDING": 1, "UP": 2, "DOWN": 4, "UNREACHABLE": 8}
_HOST_NAMES = {code: name for name, code in HOST_STATUS_CODES.items()}
_HOSTS = _Statuses(
    "host status",
    HOST_STATUS_CODES,
    {2: 0, 4: 1, 8: 2, 1: 0},
    {2: "last_time_up", 4: "last_time_down", 8: "last_time_unreachable"},
    "last_time_up",
    lambda code, name: f"{_HOST_NAMES[code]} - {name}",
    (
        "last_state_change",
        "last_hard_state_change",
        "last_time_up",
        "last_time_down",
        "last_time_unreachable",
        "last_notification",
        "next_notification",
    ),
)


def status_code(value: Any) -> int:
    """A status name (``CRITICAL``) or bit (16) as Nagios' status bit."""
    return _SERVICES.code(value)


def host_status_code(value: Any) -> int:
    """A host status name (``DOWN``) or bit (4) as Nagios' host status bit."""
    return _HOSTS.code(value)


class _NagiosKind:
    """What the two Nagios kinds share: updates and no tombstones.

    ``label`` is the key whose value the default plugin output names.
    """

    name: str
    tombstones = False
    statuses: _Statuses
    label: str

    def apply(self, state: CloudState, rec: Record, fields: Doc, now: float) -> tuple[Doc, dict]:
        """The record after an update; a status change moves state times."""
        doc = dict(rec.doc)
        if "status" in fields:
            code = self.statuses.code(fields.pop("status"))
            if code != doc["status"]:
                doc.update(self.statuses.keys(code, doc[self.label], now, fields))
        if "output" in fields:
            doc["plugin_output"] = fields.pop("output")
        doc.update(fields)
        return doc, rec.meta

    def bury(self, state: CloudState, rec: Record, now: float) -> Doc:
        """Nagios records keep no tombstone."""
        raise NotImplementedError

    def cascade(self, state: CloudState, rec: Record) -> None:
        """Nothing depends on a Nagios record in the fake cloud."""


class NagiosServiceKind(_NagiosKind):
    """The ``nagios_services`` kind; key ``"<host_name>;<description>"``.

    Friendly fields: ``host_name`` (or ``host``), ``description`` (or
    ``service``), ``status`` (name or bit), ``output``; other keys verbatim.
    Times are kept in seconds and printed in milliseconds.
    """

    name = "nagios_services"
    statuses = _SERVICES
    label = "description"

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new service, OK unless told otherwise."""
        host = fields.pop("host_name", None) or fields.pop("host")
        description = fields.pop("description", None) or fields.pop("service")
        code = status_code(fields.pop("status", "OK"))
        doc = {
            "host_name": host,
            "description": description,
            **_TEMPLATE,
            "last_time_ok": 0,
            "last_time_warning": 0,
            "last_time_unknown": 0,
            "last_time_critical": 0,
            **_SERVICES.keys(code, description, now, fields),
        }
        doc.update(fields)
        return f"{host};{description}", doc, {}


class NagiosHostKind(_NagiosKind):
    """The ``nagios_hosts`` kind; key the host's name.

    Friendly fields: ``name`` (or ``host_name``), ``status`` (name or bit),
    ``output``; other keys verbatim.  Times are kept in seconds and printed
    in milliseconds.
    """

    name = "nagios_hosts"
    statuses = _HOSTS
    label = "name"

    def build(self, state: CloudState, fields: Doc, now: float) -> tuple[str, Doc, dict]:
        """A new host, UP unless told otherwise."""
        name = fields.pop("name", None) or fields.pop("host_name")
        code = host_status_code(fields.pop("status", "UP"))
        template = {k: v for k, v in _TEMPLATE.items() if k != "obsess"}
        doc = {
            "name": name,
            **template,
            "obsess": True,
            "last_time_up": 0,
            "last_time_down": 0,
            "last_time_unreachable": 0,
            **_HOSTS.keys(code, name, now, fields),
        }
        doc.update(fields)
        return name, doc, {}


def _ms(seconds: float) -> int:
    return int(seconds) * 1000


def _details(rec: Record, now: float, statuses: _Statuses = _SERVICES) -> dict[str, Any]:
    """The record as ``details=true`` prints it, timers at request time."""
    out = dict(rec.doc)
    for key in statuses.times:
        out[key] = _ms(out[key])
    # A stable per-service phase, so services are not all checked at once.
    last_check = now - zlib.crc32(rec.key.encode()) % _CHECK_INTERVAL
    out["last_update"] = _ms(now)
    out["last_check"] = _ms(last_check)
    out["next_check"] = _ms(last_check + _CHECK_INTERVAL)
    return out


class NagiosService:
    """Nagios' status JSON CGI. Threading: stateless."""

    name = "nagios"
    prefixes = ("/nagios",)

    def __init__(self, state: CloudState, user: str, password: str) -> None:
        self.state = state
        self._user = user
        self._password = password
        self._started = state.clock.peek()

    def public(self, req: Request) -> bool:
        """Nagios does its own (basic) authentication, not Keystone's."""
        return True

    def listing(self, req: Request) -> str | None:
        """The service and host lists; they are never paged."""
        if req.path != PATH or req.method != "GET":
            return None
        return "hostlist" if req.param("query") in ("hostlist", "host") else "servicelist"

    def _authorized(self, req: Request) -> bool:
        scheme, _, value = (req.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self._user and secrets.compare_digest(password, self._password)

    def handle(self, req: Request) -> Response:
        """Answer one CGI request."""
        if not self._authorized(req):
            page = b"<html><body><h1>Unauthorized</h1></body></html>"
            return Response(
                401,
                page,
                {"WWW-Authenticate": 'Basic realm="Nagios Access"'},
                "text/html; charset=iso-8859-1",
            )
        if req.path != PATH:
            return Response(
                404,
                b"<html><body><h1>Not Found</h1></body></html>",
                {},
                "text/html; charset=iso-8859-1",
            )
        query = req.param("query") or ""
        now = self.state.clock.peek()
        if query == "servicelist":
            data, code, message = self._servicelist(req, now), 0, ""
        elif query == "service":
            data, code, message = self._service(req, now)
        elif query == "hostlist":
            data, code, message = self._hostlist(req, now), 0, ""
        elif query == "host":
            data, code, message = self._host(req, now)
        else:
            data, code = {}, 6
            message = f"The query option value '{query}' is invalid."
        return json_response(
            200,
            {
                "format_version": 0,
                "result": self._result(req, query, now, code, message),
                "data": data,
            },
        )

    def _result(
        self, req: Request, query: str, now: float, code: int, message: str
    ) -> dict[str, Any]:
        texts = (
            "Success",
            "Unable to Allocate Memory",
            "Unable to Open File for Reading",
            "Option Invalid",
            "Option Missing",
            "Option Value Missing",
            "Option Value Invalid",
            "Option Ignored",
        )
        return {
            "query_time": _ms(now),
            "cgi": "statusjson.cgi",
            "user": self._user,
            "query": query,
            "query_status": "released",
            "program_start": _ms(self._started),
            "last_data_update": _ms(now),
            "type_code": code,
            "type_text": texts[code],
            "message": message,
        }

    def _servicelist(self, req: Request, now: float) -> dict[str, Any]:
        details = req.param("details") == "true"
        host, description = req.param("hostname"), req.param("servicedescription")
        selectors: dict[str, Any] = {}
        if description:
            selectors["servicedescription"] = description
        hosts: dict[str, dict[str, Any]] = {}
        with self.state.lock:
            for rec in self.state.table("nagios_services").records():
                doc = rec.doc
                if (host and doc["host_name"] != host) or (
                    description and doc["description"] != description
                ):
                    continue
                value = _details(rec, now) if details else doc["status"]
                hosts.setdefault(doc["host_name"], {})[doc["description"]] = value
        return {"selectors": selectors, "servicelist": hosts}

    def _service(self, req: Request, now: float) -> tuple[dict[str, Any], int, str]:
        host, description = req.param("hostname"), req.param("servicedescription")
        if not host or not description:
            return {}, 4, "Host name and service description required for service query."
        with self.state.lock:
            rec = self.state.get("nagios_services", f"{host};{description}")
            if rec is None:
                return {}, 6, f"The service '{description}' on host '{host}' could not be found."
            return {"service": _details(rec, now)}, 0, ""

    def _hostlist(self, req: Request, now: float) -> dict[str, Any]:
        details = req.param("details") == "true"
        hosts: dict[str, Any] = {}
        with self.state.lock:
            for rec in self.state.table("nagios_hosts").records():
                hosts[rec.key] = _details(rec, now, _HOSTS) if details else rec.doc["status"]
        return {"selectors": {}, "hostlist": hosts}

    def _host(self, req: Request, now: float) -> tuple[dict[str, Any], int, str]:
        name = req.param("hostname")
        if not name:
            return {}, 4, "Host name required for host query."
        with self.state.lock:
            rec = self.state.get("nagios_hosts", name)
            if rec is None:
                return {}, 6, f"The host '{name}' could not be found."
            return {"host": _details(rec, now, _HOSTS)}, 0, ""
