"""Fake Keystone v3: version documents, token issue and validation, catalog.

Mounted at ``/identity`` (the catalog's identity URL) and at ``/v3``.
``POST /v3/auth/tokens`` accepts the ``password`` method (user by name and
domain, or by id; project scope by name and domain, or by id; system scope
``{"system": {"all": true}}``; unscoped if no scope) and the
``application_credential`` method (id and secret, or name, user and
secret). It answers 201 with the token id in ``X-Subject-Token``
and a body with ``expires_at``, ``user``, ``project``, ``roles`` and the
full ``catalog`` (a system-scoped token's catalog lists the services whose
URLs hold a project id with no endpoint, as Keystone does). Anything else is
401, as Keystone answers it.

Tokens are opaque random strings; secrets never reach a log.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from synchronizer_fakecloud import clock
from synchronizer_fakecloud.web import Request, Response, json_response

_NAMESPACE = uuid.UUID("6f1d2c9e-33a5-4f3b-9d1e-0c2b8a7d5e41")
_ROLES = ("admin", "member", "reader")
_UNAUTHORIZED = "The request you have made requires authentication."
_SYSTEM = "<system>"  # what _check returns for a system-scoped request


def stable_id(*parts: str) -> str:
    """A deterministic 32-hex id (Keystone's id format) for names."""
    return uuid.uuid5(_NAMESPACE, ":".join(parts)).hex


@dataclass(frozen=True)
class Credentials:
    """The one user, project and application credential the cloud knows.

    Secrets are excluded from ``repr`` so that logging this object is safe.
    """

    username: str = "admin"
    password: str = field(default="secret", repr=False)
    project_name: str = "admin"
    domain_id: str = "default"
    domain_name: str = "Default"
    app_cred_name: str = "synchronizer"
    app_cred_secret: str = field(default="app-cred-secret", repr=False)
    region: str = "RegionOne"
    user_id: str = ""
    project_id: str = ""
    app_cred_id: str = ""

    def __post_init__(self) -> None:
        # Ids left empty are derived from names, so they are stable across runs.
        derived = {
            "user_id": stable_id("user", self.username),
            "project_id": stable_id("project", self.project_name),
            "app_cred_id": stable_id("app-cred", self.app_cred_name),
        }
        for name, value in derived.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token stands for; never carries the secret that got it."""

    user_id: str
    project_id: str | None
    methods: tuple[str, ...]
    issued: float
    expires: float
    app_cred: bool = False
    system: bool = False


class TokenStore:
    """Issued tokens, their lifetime and their revocation.

    Contract: a token validates while it is not expired and not revoked;
    :attr:`ttl` applies to tokens issued after it is set.
    Threading: safe from any thread.
    """

    def __init__(self, ttl: float = 3600.0, prefix: str = "gAAAAA") -> None:
        self.ttl = ttl
        # Fernet ids start with gAAAAA; a test may choose a prefix it can
        # recognise in output that must never show a token.
        self.prefix = prefix
        self.issued_count = 0
        self._tokens: dict[str, TokenInfo] = {}
        self._lock = threading.Lock()

    def issue(
        self,
        user_id: str,
        project_id: str | None,
        methods: tuple[str, ...],
        app_cred: bool = False,
        system: bool = False,
    ) -> tuple[str, TokenInfo]:
        """Create a token; return its id and what it stands for."""
        now = time.time()
        info = TokenInfo(user_id, project_id, methods, now, now + self.ttl, app_cred, system)
        token = self.prefix + secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[token] = info
            self.issued_count += 1
        return token, info

    def validate(self, token: str | None) -> TokenInfo | None:
        """The token's info if it is known and unexpired, else None."""
        if not token:
            return None
        with self._lock:
            info = self._tokens.get(token)
        if info is None or info.expires <= time.time():
            return None
        return info

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()


def unauthorized(base_url: str) -> Response:
    """The 401 every service (keystonemiddleware) gives a bad token."""
    resp = error(401, _UNAUTHORIZED)
    resp.headers["WWW-Authenticate"] = f'Keystone uri="{base_url}/identity"'
    return resp


def error(status: int, message: str) -> Response:
    """A Keystone-style error body."""
    titles = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    body = {"error": {"code": status, "message": message, "title": titles.get(status, "Error")}}
    return json_response(status, body)


class KeystoneService:
    """The identity API of the fake cloud.

    Threading: stateless apart from the token store, which is thread-safe.
    """

    name = "keystone"
    prefixes = ("/identity", "/v3")

    def __init__(self, creds: Credentials, tokens: TokenStore) -> None:
        self.creds = creds
        self.tokens = tokens

    def public(self, req: Request) -> bool:
        """Keystone checks credentials itself; no token is required."""
        return True

    def listing(self, req: Request) -> str | None:
        """Keystone has no paginated listing the fake cloud serves."""
        return None

    def handle(self, req: Request) -> Response:
        """Route one request."""
        path = req.path.removeprefix("/identity").rstrip("/")
        if path == "" and req.method == "GET":
            return json_response(300, {"versions": {"values": [self._version(req)]}})
        if path == "/v3" and req.method == "GET":
            return json_response(200, {"version": self._version(req)})
        if path == "/v3/auth/tokens" and req.method == "POST":
            return self._authenticate(req)
        if path == "/v3/auth/tokens" and req.method == "GET":
            return self._validate(req)
        return error(404, "Could not find resource.")

    def _version(self, req: Request) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{req.base_url}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def _authenticate(self, req: Request) -> Response:
        try:
            auth = req.json()["auth"]
            methods = tuple(auth["identity"]["methods"])
        except (ValueError, KeyError, TypeError):
            return error(400, "Expecting to find auth in request body.")
        try:
            project_id, app_cred = self._check(auth, methods)
        except (KeyError, TypeError, AttributeError, PermissionError):
            return error(401, _UNAUTHORIZED)
        system = project_id == _SYSTEM
        if system:
            project_id = None
        token, info = self.tokens.issue(self.creds.user_id, project_id, methods, app_cred, system)
        body = self.token_body(req.base_url, info)
        return json_response(201, body, {"X-Subject-Token": token})

    def _check(self, auth: dict, methods: tuple[str, ...]) -> tuple[str | None, bool]:
        """Return (project id or None, by app cred); raise if not allowed."""
        identity = auth["identity"]
        if "application_credential" in methods:
            self._check_app_cred(identity["application_credential"])
            return self.creds.project_id, True
        if "password" not in methods:
            raise PermissionError("unsupported method")
        self._check_user(identity["password"]["user"], need_password=True)
        scope = auth.get("scope")
        if not scope:
            return None, False
        if "system" in scope:
            if scope["system"] != {"all": True}:
                raise PermissionError("unknown system scope")
            return _SYSTEM, False
        self._check_project(scope["project"])
        return self.creds.project_id, False

    def _check_user(self, user: dict, need_password: bool) -> None:
        if "id" in user:
            ok = user["id"] == self.creds.user_id
        else:
            ok = user["name"] == self.creds.username and self._domain_ok(user["domain"])
        if need_password:
            ok = ok and secrets.compare_digest(str(user["password"]), self.creds.password)
        if not ok:
            raise PermissionError("bad user")

    def _check_project(self, project: dict) -> None:
        if "id" in project:
            ok = project["id"] == self.creds.project_id
        else:
            ok = project["name"] == self.creds.project_name and self._domain_ok(project["domain"])
        if not ok:
            raise PermissionError("bad project")

    def _check_app_cred(self, cred: dict) -> None:
        if "id" in cred:
            ok = cred["id"] == self.creds.app_cred_id
        else:
            ok = cred["name"] == self.creds.app_cred_name
            self._check_user(cred["user"], need_password=False)
        if not (ok and secrets.compare_digest(str(cred["secret"]), self.creds.app_cred_secret)):
            raise PermissionError("bad application credential")

    def _domain_ok(self, domain: dict) -> bool:
        if "id" in domain:
            return domain["id"] == self.creds.domain_id
        return str(domain["name"]).lower() == self.creds.domain_name.lower()

    def _validate(self, req: Request) -> Response:
        if self.tokens.validate(req.header("X-Auth-Token")) is None:
            return unauthorized(req.base_url)
        subject = req.header("X-Subject-Token")
        info = self.tokens.validate(subject)
        if info is None:
            return error(404, "Could not find token: " + (subject or "")[:8])
        return json_response(
            200, self.token_body(req.base_url, info), {"X-Subject-Token": subject or ""}
        )

    def token_body(self, base_url: str, info: TokenInfo) -> dict[str, Any]:
        """The body of a token response, catalog included when scoped."""
        creds = self.creds
        domain = {"id": creds.domain_id, "name": creds.domain_name}
        token: dict[str, Any] = {
            "methods": list(info.methods),
            "user": {
                "domain": domain,
                "id": creds.user_id,
                "name": creds.username,
                "password_expires_at": None,
            },
            "audit_ids": [secrets.token_urlsafe(16)[:22]],
            "issued_at": clock.keystone_time(info.issued),
            "expires_at": clock.keystone_time(info.expires),
        }
        if info.project_id is not None:
            token["project"] = {
                "domain": domain,
                "id": creds.project_id,
                "name": creds.project_name,
            }
            token["is_domain"] = False
            token["roles"] = [{"id": stable_id("role", r), "name": r} for r in _ROLES]
            token["catalog"] = catalog(base_url, creds.project_id, creds.region)
        if info.system:
            token["system"] = {"all": True}
            token["roles"] = [{"id": stable_id("role", r), "name": r} for r in _ROLES]
            token["catalog"] = catalog(base_url, None, creds.region)
        if info.app_cred:
            token["application_credential"] = {
                "id": creds.app_cred_id,
                "name": creds.app_cred_name,
                "restricted": True,
            }
        return {"token": token}


_SERVICES = (
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("volumev3", "cinderv3", "/volume/v3/{project_id}"),
    ("network", "neutron", "/network"),
    ("baremetal", "ironic", "/baremetal"),
    ("orchestration", "heat", "/heat/v1/{project_id}"),
)


def catalog(base_url: str, project_id: str | None, region: str) -> list[dict[str, Any]]:
    """The service catalog: every service at public, internal and admin.

    Without a project (a system-scoped token) a service whose URL holds the
    project id is listed with no endpoint, as Keystone lists it.
    """
    entries = []
    for service_type, name, path in _SERVICES:
        url = base_url + path.format(project_id=project_id)
        endpoints = (
            []
            if project_id is None and "{project_id}" in path
            else [
                {
                    "id": stable_id("endpoint", name, interface),
                    "interface": interface,
                    "region": region,
                    "region_id": region,
                    "url": url,
                }
                for interface in ("public", "internal", "admin")
            ]
        )
        entries.append(
            {
                "endpoints": endpoints,
                "id": stable_id("service", name),
                "type": service_type,
                "name": name,
            }
        )
    return entries
