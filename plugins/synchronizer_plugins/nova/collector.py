"""What the Nova collectors share: :class:`NovaCollector` and the errors' mapping.

A python-novaclient client whose microversion is negotiated with the server,
Nova-style paging (markers from ``<collection>_links``, one page read
ahead), and the mapping of client errors to transient or permanent ones.
Its options, in each collector's group::

    [nova.instance]
    period = 60
    page_size = 1000
    max_microversion = 2.96

This module is the one place the Nova plugins load python-novaclient (and
with it keystoneauth1 and requests): the shapes and the notification plugin
do without.  Threading: like every collector, one instance is used by one
thread.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import requests
from keystoneauth1 import exceptions as ks_exc
from novaclient import api_versions
from novaclient import client as nova_client
from novaclient import exceptions as nova_exc
from oslo_config import cfg

from synchronizer.errors import (
    ConfigError,
    IncompleteListing,
    PermanentError,
    SynchronizerError,
    TransientError,
)
from synchronizer_plugins import openstack, paging

LOG = logging.getLogger(__name__)

__all__ = ["PLUGIN_MAX_MICROVERSION", "NovaCollector", "translate_error"]

#: The newest compute microversion these plugins were written and tested for
#: (python-novaclient's newest too); Nova may offer more.
PLUGIN_MAX_MICROVERSION = "2.96"
MIN_MICROVERSION = api_versions.APIVersion("2.1")

# HTTP statuses that retrying cannot fix: the request or the credentials are wrong.
_PERMANENT_STATUSES = frozenset({400, 403})
# Nova's 400 for a marker that no longer exists (nova/api/openstack/common.py).
_MARKER_GONE = re.compile(r"marker \[.*\] not found")
# What python-novaclient and keystoneauth raise for a failed request.
_CLIENT_ERRORS = (
    nova_exc.ClientException,
    nova_exc.UnsupportedVersion,
    ks_exc.ClientException,
    requests.RequestException,
)


def translate_error(exc: Exception) -> SynchronizerError:
    """Map a novaclient or keystoneauth error to a transient or permanent one.

    Permanent: 400/403 from Nova, an unsupported microversion, and
    keystoneauth's Forbidden/EndpointNotFound.  Transient: a 401 (refused
    credentials may be fixed in Keystone or the file without a restart;
    retried with back-off, see :func:`openstack.classify`), a 400 ``marker
    [x] not found`` (the record a page walk continues from was deleted
    while it walked: the next cycle walks again) and everything
    else (5xx, 404, 406 — the server no longer offers the
    negotiated microversion, so the next cycle negotiates again —, 409, 429,
    connection failures, timeouts, broken bodies).
    The message holds the error class and text, never a token.
    """
    if isinstance(exc, SynchronizerError):
        return exc
    if isinstance(exc, nova_exc.UnsupportedVersion):
        return PermanentError(f"UnsupportedVersion: {exc}")
    if isinstance(exc, nova_exc.ClientException):
        what = f"Nova answered {exc.code} ({type(exc).__name__}): {exc.message}"
        if exc.code == 401:
            return TransientError(openstack.REFUSED.format(what=what))
        if exc.code == 400 and _MARKER_GONE.search(str(exc.message)):
            return TransientError(f"{what}: deleted while the listing walked past it")
        kind = PermanentError if exc.code in _PERMANENT_STATUSES else TransientError
        return kind(what)
    if isinstance(exc, ks_exc.ClientException):
        return openstack.classify(exc)
    return TransientError(f"{type(exc).__name__}: {exc}")


class NovaCollector(openstack.OpenStackCollector):
    """A collector on Nova through python-novaclient.

    The client is created on first use: it asks the server for its newest
    microversion (``api_versions.discover_version``), takes the lowest of
    that, python-novaclient's newest and ``max_microversion``, logs the result
    at INFO and uses it for every request.  A 406 (the server no longer
    offers it) drops the client so the next cycle negotiates again.
    """

    service_type: ClassVar[str] = "compute"

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            paging.page_size_option(
                "Records asked per page (Nova caps it at its own max_limit, "
                "1000 by default); every page is followed to the end."
            ),
            cfg.StrOpt(
                "max_microversion",
                default=PLUGIN_MAX_MICROVERSION,
                regex=r"^2\.\d+$",
                help="Newest compute API microversion to negotiate (at most "
                f"{PLUGIN_MAX_MICROVERSION}); the server's and python-novaclient's "
                "newest also cap it.",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        self.max_version = api_versions.APIVersion(self.options.max_microversion)
        if (
            not MIN_MICROVERSION
            <= self.max_version
            <= api_versions.APIVersion(PLUGIN_MAX_MICROVERSION)
        ):
            raise ConfigError(
                f"[{self.group}] max_microversion must be between 2.1 and "
                f"{PLUGIN_MAX_MICROVERSION}, not {self.options.max_microversion}"
            )
        self._nova: Any = None

    # -- the client -------------------------------------------------------

    def _new_client(self, version: api_versions.APIVersion | str) -> Any:
        creds = self.credentials
        return nova_client.Client(
            version,
            session=self.keystone_session(),
            endpoint_type=creds.interface,
            region_name=self.region_name,
        )

    def nova(self) -> Any:
        """The novaclient client at the negotiated microversion."""
        if self._nova is None:
            try:
                self._nova = self._new_client(self._negotiate())
            except _CLIENT_ERRORS as exc:
                raise translate_error(exc) from exc
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # python-novaclient chokes on a version document that is not JSON.
                raise TransientError(f"unreadable compute version document: {exc!r}") from exc
        return self._nova

    @property
    def api_version(self) -> api_versions.APIVersion:
        """The negotiated microversion (negotiates on first use)."""
        return self.nova().api_version

    def _negotiate(self) -> api_versions.APIVersion:
        probe = self._new_client(MIN_MICROVERSION)
        newest = api_versions.discover_version(probe, api_versions.APIVersion("2.latest"))
        version = min(newest, self.max_version)
        if version != newest:
            # Checks that the server's range holds the cap (raises otherwise).
            version = api_versions.discover_version(probe, version)
        if version < MIN_MICROVERSION:
            raise PermanentError(f"Nova offers no compute microversion >= 2.1 (got {version})")
        LOG.info(
            "%s: negotiated compute API microversion %s (newest the server and "
            "python-novaclient share: %s; plugin maximum: %s)",
            self.group,
            version.get_string(),
            newest.get_string(),
            self.max_version.get_string(),
        )
        return version

    # -- requests ---------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """GET ``path`` (below the compute endpoint); the JSON body, or raise."""
        url = path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            resp, body = self.nova().client.get(url)
        except _CLIENT_ERRORS as exc:
            if isinstance(exc, nova_exc.NotAcceptable):
                self._nova = None  # negotiate again next time
            raise translate_error(exc) from exc
        # The listing's time on Nova's clock: the next changes-since counts from it.
        self.note_service_date(getattr(resp, "headers", {}).get("Date"))
        if not isinstance(body, dict):
            raise TransientError(f"GET {path}: the response is not a JSON object")
        return body

    def pages(
        self, path: str, collection: str, params: Mapping[str, Any], *, observe: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield every record of a paged collection, page after page.

        Each page's records are observed when the page was asked for
        (:meth:`observe`); ``observe=False`` for a listing that gives no
        entities of its own (flavors, read in the middle of a servers page).

        Follows ``<collection>_links`` ``next`` markers until a page has none,
        reading one page ahead (:func:`synchronizer_plugins.paging.read_ahead`).  Any
        failing page raises, so the listing counts as incomplete.  So does a
        page holding ``limit`` records without a next link: Nova links every
        full page (even the last one, whose next page is empty), so such a
        page is a listing cut short (a proxy, a bug), not its end.
        """
        limit = params.get("limit")

        def fetch(marker: str | None) -> dict[str, Any]:
            body = self.get(path, params if marker is None else {**params, "marker": marker})
            if not isinstance(body.get(collection), list):
                raise IncompleteListing(f"GET {path}: no {collection!r} list in the response")
            return body

        def follow(body: dict[str, Any]) -> str | None:
            records = body[collection]
            marker = paging.next_marker(body.get(f"{collection}_links"), records)
            if marker is None and limit and len(records) >= int(limit):
                raise IncompleteListing(
                    f"GET {path}: a full page of {len(records)} {collection} came without a "
                    "next link (Nova links every full page): the listing may be cut short"
                )
            return marker

        return paging.listing(
            fetch,
            None,
            follow,
            collection,
            lambda marker: IncompleteListing(f"GET {path}: paging loops at marker {marker}"),
            self.observe if observe else None,
        )
