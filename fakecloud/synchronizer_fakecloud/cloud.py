"""The fake cloud without its HTTP server: the Python control API.

:class:`Cloud` owns the store, the tokens, the faults and the request
statistics, and offers what tests and benchmarks drive the cloud with;
:class:`~synchronizer_fakecloud.server.FakeCloud` adds the HTTP server.
The same operations are served over HTTP under ``/_control`` (see
:mod:`synchronizer_fakecloud.control`)::

    sid = cloud.create("servers", name="web-1", host="compute-0001")
    cloud.update("servers", sid, status="SHUTOFF")
    cloud.delete("servers", sid)                  # tombstone, DELETED
    cloud.change("servers", fraction=0.01)        # seeded random flips
    cloud.fail_page("nova", page=1)               # 0-based
    cloud.displace("nova", page=1)                # a record on two pages, one on none
    cloud.clock_offset(-60)                       # the API's clock 60 s behind
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synchronizer_fakecloud import kinds, nova_flavors, populate
from synchronizer_fakecloud.clock import Clock
from synchronizer_fakecloud.control import ControlService
from synchronizer_fakecloud.faults import Faults
from synchronizer_fakecloud.keystone import Credentials, TokenStore
from synchronizer_fakecloud.state import CloudState, Record
from synchronizer_fakecloud.stats import RequestRecord, RequestStats


@dataclass(frozen=True, slots=True)
class RecordView:
    """A copy of one record: its canonical document and its times.

    ``created``, ``updated`` and ``deleted`` are epoch seconds (the store's
    strictly increasing clock); ``deleted`` is None unless a tombstone.
    """

    kind: str
    key: str
    doc: dict[str, Any]
    created: float
    updated: float
    deleted: float | None

    @classmethod
    def of(cls, rec: Record) -> RecordView:
        """Snapshot a record (call with the state lock held)."""
        return cls(rec.kind, rec.key, dict(rec.doc), rec.created, rec.updated, rec.deleted)


class Cloud:
    """The fake cloud's state and every knob on it.

    Contract: entity methods raise KeyError for an unknown kind or key and
    ValueError for invalid fields; fault methods raise ValueError for an
    unknown service or mode. ``seed`` makes populate/change reproducible;
    issued token ids start with ``token_prefix``.
    Threading: every method is safe from any thread.
    """

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        token_ttl: float = 3600.0,
        token_prefix: str = "gAAAAA",  # noqa: S107 - Fernet's prefix, not a secret
        nagios_user: str = "nagiosadmin",
        nagios_password: str = "nagios",  # noqa: S107 - the fake's default
        seed: int = 0,
        clock: Clock | None = None,
    ) -> None:
        self.credentials = credentials or Credentials()
        self.state = CloudState(kinds.registry(), clock)
        self.tokens = TokenStore(token_ttl, token_prefix)
        self.faults = Faults()
        self.stats = RequestStats()
        self.nagios_user = nagios_user
        self._nagios_password = nagios_password
        self._token_ttl = token_ttl
        self._seed = seed
        self._rng = populate.seeded_rng(seed)
        self.control = ControlService(self)
        self._init_context()

    def _init_context(self) -> None:
        """The shared facts and the records every fresh cloud has (its flavors)."""
        self.state.context.clear()
        self.state.context.update(
            project_id=self.credentials.project_id,
            user_id=self.credentials.user_id,
            username=self.credentials.username,
        )
        nova_flavors.seed(self.state)

    # Entities.

    def create(self, kind: str, **fields: Any) -> str:
        """Create a record from friendly fields; return its key."""
        return self.state.create(kind, fields).key

    def update(self, kind: str, key: str, **fields: Any) -> None:
        """Update a live record; its ``updated`` time moves."""
        self.state.update(kind, key, fields)

    def delete(self, kind: str, key: str) -> None:
        """Delete a live record (servers leave a ``DELETED`` tombstone)."""
        self.state.delete(kind, key)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """A copy of a record's canonical document (tombstones too), or None."""
        view = self.record(kind, key)
        return view.doc if view else None

    def record(self, kind: str, key: str) -> RecordView | None:
        """A record with its times, or None."""
        with self.state.lock:
            rec = self.state.get(kind, key)
            return RecordView.of(rec) if rec else None

    def keys(self, kind: str, include_deleted: bool = False) -> list[str]:
        """Keys of a kind, oldest first."""
        with self.state.lock:
            return [
                rec.key
                for rec in self.state.table(kind).records()
                if include_deleted or rec.deleted is None
            ]

    def count(self, kind: str) -> int:
        """Number of live records of a kind."""
        return self.state.counts()[kind]

    def populate(self, **counts: int) -> dict[str, int]:
        """Bulk-create a topology (see :func:`populate.populate`)."""
        counts.setdefault("seed", self._seed)
        return populate.populate(self.state, **counts)

    def change(
        self,
        kind: str = "servers",
        *,
        fraction: float | None = None,
        count: int | None = None,
        action: str = "update",
        seed: int | None = None,
    ) -> list[str]:
        """Update, delete or create a random subset; return the keys."""
        rng = populate.seeded_rng(seed) if seed is not None else self._rng
        return populate.change(
            self.state, kind, fraction=fraction, count=count, action=action, rng=rng
        )

    def purge(self, kind: str = "servers") -> int:
        """Forget tombstones, as Nova's archive does; return how many."""
        return self.state.purge(kind)

    def reset(self) -> None:
        """Forget every record, fault, token and statistic."""
        self.state.reset()
        self._init_context()
        self.clear_faults()
        self.stats.reset()
        self.tokens.revoke_all()
        self.tokens.ttl = self._token_ttl
        self._rng = populate.seeded_rng(self._seed)

    # Faults and tokens.

    def fail_page(
        self,
        service: str,
        page: int,
        status: int = 500,
        times: int | None = 1,
        collection: str | None = None,
    ) -> None:
        """Fail the 0-based ``page`` of a listing walk (see :mod:`faults`)."""
        self.faults.fail_page(service, page, status, times, collection)

    def fail(self, service: str, status: int = 503, times: int | None = None) -> None:
        """Fail every request of a service (``times`` None: until cleared)."""
        self.faults.fail(service, status, times)

    def delay(self, service: str, seconds: float) -> None:
        """Delay every answer of a service (0 to stop)."""
        self.faults.delay(service, seconds)

    def corrupt(self, service: str, mode: str = "truncate", times: int | None = 1) -> None:
        """Break the next bodies of a service (truncate/malformed/empty/disconnect/enormous)."""
        self.faults.corrupt(service, mode, times)

    def keystone_down(self, down: bool = True, mode: str = "refuse") -> None:
        """Take Keystone down (``refuse`` drops connections, ``503`` answers)."""
        self.faults.keystone_down(down, mode)

    def displace(
        self, service: str, page: int = 1, times: int | None = 1, collection: str | None = None
    ) -> None:
        """List a page's first record as the page before's last (a walk that shifted)."""
        self.faults.displace(service, page, times, collection)

    def drop_next(
        self, service: str, page: int = 0, times: int | None = 1, collection: str | None = None
    ) -> None:
        """Answer a page of a walk without its next link (the listing ends there)."""
        self.faults.drop_next(service, page, times, collection)

    def bad_record(
        self, service: str, key: str, field: str, value: Any = None, times: int | None = None
    ) -> None:
        """List one record with a field of the wrong type or value (e.g. name 12345)."""
        self.faults.bad_record(service, key, field, value, times)

    def hang(self, service: str, times: int | None = None) -> None:
        """Accept a service's requests and never answer them (until cleared)."""
        self.faults.hang(service, times)

    def trickle(self, service: str, seconds_per_byte: float) -> None:
        """Write a service's answers a byte at a time (0 to stop)."""
        self.faults.trickle(service, seconds_per_byte)

    def clock_offset(self, seconds: float) -> None:
        """Run the APIs' clock (record times, changes-since, Date headers) off by ``seconds``.

        Keystone keeps the true time (its tokens' expiry is judged by the client).
        """
        self.state.clock.offset = float(seconds)

    def clear_faults(self) -> None:
        """Disarm every fault (the clock's offset too)."""
        self.faults.clear()
        self.state.clock.offset = 0.0

    def token_expiry(self, seconds: float) -> None:
        """Lifetime of tokens issued from now on."""
        if seconds <= 0:
            raise ValueError("token lifetime must be positive")
        self.tokens.ttl = float(seconds)

    def revoke_tokens(self) -> None:
        """Invalidate every issued token: clients get 401 and re-authenticate."""
        self.tokens.revoke_all()

    @property
    def tokens_issued(self) -> int:
        """How many tokens Keystone issued so far."""
        return self.tokens.issued_count

    # Statistics.

    def request_count(
        self, path: str | None = None, method: str | None = None, service: str | None = None
    ) -> int:
        """Requests seen matching every criterion (``path`` is a suffix)."""
        return self.stats.count(path=path, method=method, service=service)

    def requests(self, service: str | None = None, path: str | None = None) -> list[RequestRecord]:
        """Logged requests (method, path, query, status), oldest first."""
        return self.stats.find(service=service, path_suffix=path)

    def reset_stats(self) -> None:
        """Forget request counters and the request log."""
        self.stats.reset()
