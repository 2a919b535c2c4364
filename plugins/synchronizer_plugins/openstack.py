"""Shared plumbing of the OpenStack collectors: credentials, sessions, paging.

Credentials follow the OpenStack service convention (as Ceilometer and Aodh
do): a ``[service_credentials]`` group loaded with keystoneauth1's own conf
loading, so every auth plugin keystoneauth knows works (``password``,
``v3applicationcredential``...), plus ``region_name`` and ``interface``::

    [service_credentials]
    auth_type = password
    auth_url = http://keystone:5000/v3
    username = synchronizer
    password = ...
    project_name = service
    user_domain_id = default
    project_domain_id = default
    region_name = RegionOne
    interface = internal
    cafile = /etc/ssl/certs/ca.pem
    timeout = 30

Re-authentication on token expiry is keystoneauth's job.  Every request has
a timeout (the session's ``timeout`` option, default 30 s here).

Paging reads one page ahead (:mod:`synchronizer_plugins.paging`).
:class:`PagedCollector` is the whole of a collector of one paged collection
but the conversion of a record: the service's collectors name their
endpoint, collection and shape, and it lists every page.
"""

from __future__ import annotations

import abc
import contextlib
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar
from urllib import parse

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg

from synchronizer import clouds
from synchronizer.errors import IncompleteListing, PermanentError, TransientError
from synchronizer.model import Entity
from synchronizer.plugin_base import CollectorPlugin
from synchronizer_plugins import paging

LOG = logging.getLogger(__name__)

GROUP = "service_credentials"
DEFAULT_TIMEOUT = 30

_CLIENT_OPTS = [
    cfg.StrOpt("region_name", help="Region of the endpoints to use."),
    cfg.StrOpt(
        "interface",
        default="public",
        choices=("public", "internal", "admin", "publicURL", "internalURL", "adminURL"),
        help="Catalog interface of the endpoints to use.",
    ),
]


def register_opts(conf: cfg.ConfigOpts, group: str = GROUP) -> None:
    """Register a credentials group of the ``[service_credentials]`` form (idempotent)."""
    conf.register_opts(_CLIENT_OPTS, group=group)
    ks_loading.register_session_conf_options(conf, group)
    ks_loading.register_auth_conf_options(conf, group)


def list_opts() -> list[cfg.Opt]:
    """Every option of ``[service_credentials]``, for the config generator."""
    opts = list(_CLIENT_OPTS) + ks_loading.get_session_conf_options()
    opts += ks_loading.get_auth_common_conf_options()
    opts += ks_loading.get_auth_plugin_conf_options("password")
    seen: set[str] = set()
    return [o for o in opts if not (o.dest in seen or seen.add(o.dest))]


def load_session(conf: cfg.ConfigOpts, group: str = GROUP) -> ks_session.Session:
    """A keystoneauth session from a credentials group (``[service_credentials]``).

    Raises PermanentError when the group configures no auth plugin.
    """
    register_opts(conf, group)
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    if auth is None:
        raise PermanentError(f"[{group}] auth_type is not set")
    sess = ks_loading.load_session_from_conf_options(conf, group, auth=auth)
    if sess.timeout is None:
        sess.timeout = DEFAULT_TIMEOUT
    return sess


def credentials_option(default: str = GROUP) -> cfg.StrOpt:
    """The ``credentials`` option every OpenStack collector has."""
    return cfg.StrOpt(
        "credentials",
        default=default,
        regex=r"^[A-Za-z0-9_.-]+$",
        help="Config group holding this plugin's credentials, of the "
        "[service_credentials] form (auth_type and its options, region_name, "
        "interface, cafile, timeout), loaded with keystoneauth1's conf "
        "loading. Give a service that needs another scope its own group, "
        "e.g. Ironic a system-scoped one (system_scope = all).",
    )


REFUSED = (
    "credentials refused ({what}): retried with back-off, as a password rotated in "
    "Keystone may reach the configuration file next; check the credentials group"
)


def classify(exc: Exception) -> Exception:
    """Map a keystoneauth error to a transient or permanent project error.

    A 401 (Unauthorized) is transient: a password rotated in Keystone before
    the configuration file, or a Keystone that lost its fernet keys, is
    fixed without restarting the daemon; the worker retries with back-off
    and logs each step.  Forbidden (a missing role) and EndpointNotFound (no
    such service in the catalog) are permanent until a reload.
    """
    if isinstance(exc, ks_exc.Unauthorized):
        return TransientError(REFUSED.format(what=f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, ks_exc.Forbidden | ks_exc.EndpointNotFound):
        return PermanentError(f"{type(exc).__name__}: {exc}")
    return TransientError(f"{type(exc).__name__}: {exc}")


class OpenStackCollector(CollectorPlugin):
    """A collector that talks to one OpenStack service through the catalog.

    Subclasses set ``service_type`` (catalog type) and use :meth:`adapter`
    or :meth:`paginate`.  Credentials come from the group the plugin's
    ``credentials`` option names (``[service_credentials]`` by default), so
    a service that needs another scope or user gets its own group.  One
    keystoneauth session per credentials group and worker process, created
    lazily on first use.
    """

    service_type: ClassVar[str] = ""
    # One session per credentials group and worker process: [service_credentials]'s
    # in _session (as before there were groups: tests reset it), the others by name.
    _session: ClassVar[ks_session.Session | None] = None
    _sessions: ClassVar[dict[str, ks_session.Session]] = {}

    # The role without which the service answers "every project" with the
    # user's own projects only (200, no error): None where it refuses (403).
    all_projects_role: ClassVar[str | None] = None
    service_name: ClassVar[str] = ""

    @classmethod
    def all_options(cls) -> list[cfg.Opt]:
        opts = [*super().all_options(), credentials_option()]
        if cls.all_projects_role:
            opts.append(
                cfg.StrOpt(
                    "all_projects_role",
                    default=cls.all_projects_role,
                    help=f"Role the credentials' token must hold for {cls.service_name} "
                    "to list every project's resources: without it the service "
                    "answers with the user's own projects only (no error), so the "
                    "plugin refuses to list. Name the role your policy grants that "
                    "to, or leave it empty to skip the check.",
                )
            )
        return opts

    @classmethod
    def other_groups(cls, conf: cfg.ConfigOpts, group: str) -> tuple[str, ...]:
        """Its credentials group: a password fixed there and a SIGHUP restart the plugin."""
        credentials = conf[group].credentials
        register_opts(conf, credentials)
        auth_type = conf[credentials].auth_type
        if auth_type:
            # The auth plugin's own options (username, password...), which
            # keystoneauth registers only when it loads the plugin.
            with contextlib.suppress(ks_exc.NoMatchingPlugin, cfg.Error):
                options = ks_loading.get_auth_plugin_conf_options(auth_type)
                conf.register_opts(options, group=credentials)
        return (credentials,)

    @classmethod
    def session(cls, conf: cfg.ConfigOpts, group: str = GROUP) -> ks_session.Session:
        # Shared by every collector of the worker process that uses this group.
        if group == GROUP:
            if OpenStackCollector._session is None:
                OpenStackCollector._session = load_session(conf, group)
            return OpenStackCollector._session
        if group not in OpenStackCollector._sessions:
            OpenStackCollector._sessions[group] = load_session(conf, group)
        return OpenStackCollector._sessions[group]

    @classmethod
    def register_options(cls, conf: cfg.ConfigOpts, group: str) -> None:
        super().register_options(conf, group)
        register_opts(conf)

    @property
    def credentials_group(self) -> str:
        """The config group of this plugin's credentials (its ``credentials`` option)."""
        return self.options.credentials

    @property
    def credentials(self) -> Any:
        """That group's options (registered on first use)."""
        register_opts(self.conf, self.credentials_group)
        return self.conf[self.credentials_group]

    def available(self) -> bool | str:
        if not self.credentials.auth_type:
            return f"[{self.credentials_group}] auth_type is not set"
        try:
            self.check_access()
        except PermanentError as exc:
            return str(exc)
        except ks_exc.ClientException:
            return True  # Keystone down or refusing: the listing retries and says why
        return True

    def check_access(self) -> None:
        """Raise PermanentError when this plugin's token cannot list everything.

        Where a service answers a listing it cannot fully make with 200 and
        a part (rather than 403), the token tells: here, that it holds
        ``all_projects_role``.  Subclasses add what their service needs (a
        scope).  Keystone errors propagate (keystoneauth exceptions).
        """
        role = self.options.all_projects_role if self.all_projects_role else None
        if not role:
            return
        sess = self.keystone_session()
        if role not in sess.auth.get_access(sess).role_names:
            raise PermanentError(
                f"{self.service_name} lists to a user without the {role} role only its "
                f"own projects' resources (HTTP 200, no error), so [{self.group}] cannot "
                f"list them all: give the user of [{self.credentials_group}] the {role} "
                f"role (or set [{self.group}] all_projects_role to the role your policy "
                "grants that)"
            )

    def keystone_session(self) -> ks_session.Session:
        """The session of this plugin's credentials group."""
        return self.session(self.conf, self.credentials_group)

    def classify_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ks_exc.ClientException):
            return classify(exc)
        return exc

    def close(self) -> None:
        # A reload may bring new credentials: the next plugin gets a new session.
        if self.credentials_group == GROUP:
            OpenStackCollector._session = None
        OpenStackCollector._sessions.pop(self.credentials_group, None)

    @property
    def region_name(self) -> str | None:
        """The region of the endpoints: the cloud's ``region_name``, else the credentials'."""
        return clouds.region_name(self.conf, self.cloud) or self.credentials.region_name

    def adapter(self, **kwargs: Any) -> adapter.Adapter:
        """An adapter on this plugin's service endpoint."""
        creds = self.credentials
        return adapter.Adapter(
            self.keystone_session(),
            service_type=self.service_type,
            interface=creds.interface,
            region_name=self.region_name,
            **kwargs,
        )

    def paginate(
        self, api: adapter.Adapter, url: str, collection: str, links_key: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a collection, following ``next`` links.

        Any failing page raises, so the listing counts as incomplete.
        """
        links_key = links_key or f"{collection}_links"
        return paging.listing(
            lambda link: api.get(link).json(),
            url,
            lambda body: paging.next_link(
                body.get(links_key) or body.get("links") or (), body.get("next")
            ),
            collection,
            lambda link: IncompleteListing(f"{collection}: the service links back to {link}"),
            self.observe,
        )


class PagedCollector(OpenStackCollector):
    """A collector of one paged collection: every page, each record through :meth:`build`.

    Subclasses set ``path`` (below the endpoint) and ``collection`` (the
    records' key in a page), ``record_name`` (for the log) and, unless it
    is the collection's name, ``noun`` (what ``page_size`` counts, for its
    help), and implement :meth:`build`;
    they may add query parameters in :meth:`query`, set ``links_key`` when
    the next link is not under ``<collection>_links`` or ``links``, and pin
    a ``microversion``, which a service too old for it refuses (406): the
    listing then raises :class:`PermanentError` with ``unsupported``.

    Contract of :meth:`list_all`: :meth:`check_access` first (a token that
    cannot see everything raises :class:`PermanentError` before any
    request); every page is followed (``limit`` and
    ``marker`` through the next link), one read ahead; any failing page
    raises (a keystoneauth error, which :meth:`classify_error` maps), so the
    listing counts as incomplete; a record :meth:`build` refuses is reported
    with :meth:`~synchronizer.plugin_base.CollectorPlugin.skip` under its
    ``key_field`` (its entity keeps its last good state, the rest of the
    listing counts), and one without a usable key makes the listing raise at
    its end (it could hide any entity).  Threading: one worker thread uses
    an instance.
    """

    path: ClassVar[str] = ""
    collection: ClassVar[str] = ""
    links_key: ClassVar[str | None] = None
    noun: ClassVar[str] = ""
    record_name: ClassVar[str] = ""
    microversion: ClassVar[str | None] = None
    unsupported: ClassVar[str] = ""
    key_field: ClassVar[str] = "id"

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            paging.page_size_option(
                f"{cls.noun or cls.collection.capitalize()} asked for per page "
                "(the limit query parameter)."
            )
        ]

    @abc.abstractmethod
    def build(self, record: Any) -> Entity:
        """The entity of one record; raises ValueError if it is unusable."""

    def query(self) -> dict[str, Any]:
        """The listing's query parameters: the page size, and what a subclass adds."""
        return {"limit": self.options.page_size}

    def list_all(self) -> Iterator[Entity]:
        try:
            self.check_access()
        except ks_exc.ClientException as exc:
            raise self.classify_error(exc) from exc
        url = f"{self.path}?{parse.urlencode(self.query())}"
        api = self.adapter(default_microversion=self.microversion)
        keyless = 0
        try:
            for record in self.paginate(api, url, self.collection, self.links_key):
                entity = self._convert(record)
                if entity is not None:
                    yield entity
                elif self._key(record) is None:
                    keyless += 1
        except ks_exc.NotAcceptable as exc:
            if self.microversion is None:
                raise
            raise PermanentError(self.unsupported) from exc
        if keyless:
            raise IncompleteListing(
                f"{keyless} {self.record_name} record(s) without a usable {self.key_field!r}"
            )

    def _key(self, record: Any) -> str | None:
        key = record.get(self.key_field) if isinstance(record, Mapping) else None
        return key if isinstance(key, str) and key else None

    def _convert(self, record: Any) -> Entity | None:
        try:
            return self.build(record)
        except ValueError as exc:
            key = self._key(record)
            if key is not None:
                self.skip(self.entity_types[0], key, str(exc))
            return None
