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

Paging reads one page ahead (:func:`read_ahead`): while the collector
converts a page, a helper thread already waits for the next one, so the
service's time to build a page overlaps the collector's work instead of
adding to it (for 100,000 Nova servers that hides most of the conversion).
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Hashable, Iterator
from typing import Any, ClassVar, TypeVar

from keystoneauth1 import adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg

from synchronizer.errors import IncompleteListing, PermanentError, TransientError
from synchronizer.plugin_base import CollectorPlugin

LOG = logging.getLogger(__name__)

GROUP = "service_credentials"
_Next = TypeVar("_Next", bound=Hashable)
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


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[service_credentials]`` (idempotent)."""
    conf.register_opts(_CLIENT_OPTS, group=GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts() -> list[cfg.Opt]:
    """Every option of ``[service_credentials]``, for the config generator."""
    opts = list(_CLIENT_OPTS) + ks_loading.get_session_conf_options()
    opts += ks_loading.get_auth_common_conf_options()
    opts += ks_loading.get_auth_plugin_conf_options("password")
    seen: set[str] = set()
    return [o for o in opts if not (o.dest in seen or seen.add(o.dest))]


def load_session(conf: cfg.ConfigOpts) -> ks_session.Session:
    """A keystoneauth session from ``[service_credentials]``.

    Raises PermanentError when no auth plugin is configured.
    """
    register_opts(conf)
    auth = ks_loading.load_auth_from_conf_options(conf, GROUP)
    if auth is None:
        raise PermanentError("[service_credentials] auth_type is not set")
    sess = ks_loading.load_session_from_conf_options(conf, GROUP, auth=auth)
    if sess.timeout is None:
        sess.timeout = DEFAULT_TIMEOUT
    return sess


def classify(exc: Exception) -> Exception:
    """Map a keystoneauth error to a transient or permanent project error."""
    if isinstance(exc, ks_exc.Unauthorized | ks_exc.Forbidden | ks_exc.EndpointNotFound):
        return PermanentError(f"{type(exc).__name__}: {exc}")
    return TransientError(f"{type(exc).__name__}: {exc}")


class OpenStackCollector(CollectorPlugin):
    """A collector that talks to one OpenStack service through the catalog.

    Subclasses set ``service_type`` (catalog type) and use :meth:`adapter`
    or :meth:`paginate`.  One keystoneauth session per worker process,
    created lazily on first use.
    """

    service_type: ClassVar[str] = ""
    _session: ClassVar[ks_session.Session | None] = None

    @classmethod
    def session(cls, conf: cfg.ConfigOpts) -> ks_session.Session:
        # One session per worker process, shared by every collector in it.
        if OpenStackCollector._session is None:
            OpenStackCollector._session = load_session(conf)
        return OpenStackCollector._session

    @classmethod
    def register_options(cls, conf: cfg.ConfigOpts, group: str) -> None:
        super().register_options(conf, group)
        register_opts(conf)

    def classify_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ks_exc.ClientException):
            return classify(exc)
        return exc

    def close(self) -> None:
        # A reload may bring new credentials: the next plugin gets a new session.
        OpenStackCollector._session = None

    def adapter(self, **kwargs: Any) -> adapter.Adapter:
        """An adapter on this plugin's service endpoint."""
        creds = self.conf[GROUP]
        return adapter.Adapter(
            self.session(self.conf),
            service_type=self.service_type,
            interface=creds.interface,
            region_name=creds.region_name,
            **kwargs,
        )

    def paginate(
        self, api: adapter.Adapter, url: str, collection: str, links_key: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a collection, following ``next`` links.

        Any failing page raises, so the listing counts as incomplete.
        """
        links_key = links_key or f"{collection}_links"
        pages = read_ahead(
            lambda link: api.get(link).json(),
            url,
            lambda body: next_link(
                body.get(links_key) or body.get("links") or (), body.get("next")
            ),
            lambda link: IncompleteListing(f"{collection}: the service links back to {link}"),
        )
        for body in pages:
            yield from body.get(collection) or ()


def read_ahead(
    fetch: Callable[[_Next], Any],
    first: _Next,
    follow: Callable[[Any], _Next | None],
    looping: Callable[[_Next], Exception],
) -> Iterator[Any]:
    """Every page of a listing, fetching the next one while the caller has this one.

    ``fetch(first)`` gives the first page; ``follow(page)`` what to fetch for
    the page after it (a URL, a marker), or None at the end.  A helper
    thread fetches that while the caller handles the current page, never
    more than one ahead.  A page that failed raises when the caller asks
    for it, after every page before it, as a plain loop would; a ``follow``
    seen before raises ``looping(it)`` there too.  Leaving the listing (it
    ends, fails or is abandoned) waits for a request still in flight, which
    the session's timeout bounds.
    """
    seen = {first}
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as ahead:
        page = fetch(first)
        while True:
            following = follow(page)
            pending = None
            if following is not None and following not in seen:
                seen.add(following)
                pending = ahead.submit(fetch, following)
            yield page
            if following is None:
                return
            if pending is None:
                raise looping(following)
            page = pending.result()


def next_link(links: Any, fallback: Any = None) -> str | None:
    """The ``rel: next`` href of a links list (or an explicit ``next`` URL)."""
    if isinstance(links, list):
        for link in links:
            if isinstance(link, dict) and link.get("rel") == "next":
                return link.get("href")
    return fallback if isinstance(fallback, str) else None
