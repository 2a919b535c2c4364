"""The faults a soak run injects, planned from the seed, and what each one hit.

:func:`plan` spreads fault episodes over the chaos phase: every kind at
least once (quick runs cover each once), more at random in longer runs.
:class:`Chaos` runs one episode at a time and records what it hit, so the
metrics can be checked against it afterwards:

=====================  ============================================================
kind                   episode
=====================  ============================================================
``api_5xx_page``       a 500/502/503/504 on a random page of a service's next walk
``api_outage``         every request of a service answered 503 for 3 s
``api_timeout``        a service's answers held longer than the client timeout, 5 s
``api_corrupt``        the next body of a service truncated, HTML, empty, cut or
                       enormous
``keystone_down``      tokens revoked and Keystone refusing (or 503) for 6 s
``token_revoke``       tokens revoked, Keystone up: clients re-authenticate
``worker_kill``        SIGKILL of a collector worker, then wait for its restart
``broker_cut``         ``rabbitmqctl close_all_connections``
``bad_notification``   a Nova notification the plugin must drop
=====================  ============================================================
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import re
import signal
import time
from collections.abc import Callable
from typing import Any

from synchronizer_fakecloud.server import FakeCloud
from tests.helpers.daemon import Daemon
from tests.soak.nova_events import BAD_PAYLOADS
from tests.soak.probes import Broker
from tests.soak.publisher import NovaPublisher

KINDS = (
    "api_5xx_page",
    "api_outage",
    "api_timeout",
    "api_corrupt",
    "keystone_down",
    "token_revoke",
    "worker_kill",
    "broker_cut",
    "bad_notification",
)
PLUGINS_BY_SERVICE = {
    "nova": ("nova.instance", "nova.host", "nova.zone"),
    "cinder": ("cinder.volume",),
    "neutron": ("neutron.network", "neutron.port"),
    "ironic": ("ironic.node",),
    "heat": ("heat.stack",),
    "nagios": ("nagios.service",),
}
OPENSTACK_PLUGINS = tuple(p for s, ps in PLUGINS_BY_SERVICE.items() if s != "nagios" for p in ps)
COLLECTORS = tuple(p for ps in PLUGINS_BY_SERVICE.values() for p in ps)
CORRUPTIONS = ("truncate", "malformed", "empty", "disconnect", "enormous")
_STARTED = re.compile(r"Started worker (\S+) \(pid (\d+)\)")


def plan(rng: random.Random, seconds: float, quick: bool) -> list[tuple[float, str]]:
    """``(offset in seconds, kind)`` of each episode, in order."""
    kinds = list(KINDS)
    rng.shuffle(kinds)
    # A quick run still repeats some kinds; a long one adds one about every 9 s.
    extra = 5 if quick else max(0, int(seconds // 9) - len(kinds))
    kinds += rng.choices(KINDS, k=extra)
    gap = seconds / (len(kinds) + 1)
    return [(gap * (i + 1), kind) for i, kind in enumerate(kinds)]


@dataclasses.dataclass
class Episode:
    """One injected fault and what it reached."""

    kind: str
    target: str
    started: float
    fired: bool = True
    detail: str = ""


class Chaos:
    """Runs fault episodes against the cloud, the daemon and the broker.

    Threading: one thread runs episodes; the cloud's own locks guard it.
    """

    def __init__(
        self,
        cloud: FakeCloud,
        daemon: Daemon,
        broker: Broker,
        publisher: NovaPublisher,
        rng: random.Random,
        client_timeout: float,
    ) -> None:
        self.cloud = cloud
        self.daemon = daemon
        self.broker = broker
        self.publisher = publisher
        self.rng = rng
        self.client_timeout = client_timeout
        self.episodes: list[Episode] = []
        self.kills: collections.Counter[str] = collections.Counter()
        self.errors: list[str] = []

    def run(self, kind: str) -> None:
        """Run one episode of a kind (blocking for its duration)."""
        action: Callable[[], Episode] = getattr(self, f"_{kind}")
        try:
            self.episodes.append(action())
        except Exception as exc:  # noqa: BLE001 - report the fault that could not be injected
            self.errors.append(f"{kind}: {exc!r}")

    def counts(self) -> dict[str, int]:
        """Episodes that took effect, by kind."""
        return dict(collections.Counter(e.kind for e in self.episodes if e.fired))

    def fired(self, kind: str, target: str | None = None) -> int:
        return sum(
            1
            for e in self.episodes
            if e.fired and e.kind == kind and (target is None or e.target == target)
        )

    # -- API faults ------------------------------------------------------

    def _service(self) -> str:
        return self.rng.choice(sorted(PLUGINS_BY_SERVICE))

    def _hit(self, service: str, since: float, statuses: set[int] | None) -> bool:
        return any(
            r.at >= since and (statuses is None or r.status in statuses)
            for r in self.cloud.requests(service=service)
        )

    def _api_5xx_page(self) -> Episode:
        service = self._service()
        # Only Nova has several pages per walk in a soak-sized cloud.
        page = 1 if service == "nova" and self.rng.random() < 0.5 else 0
        status = self.rng.choice((500, 502, 503, 504))
        t0 = time.time()
        self.cloud.fail_page(service, page=page, status=status)
        fired = _wait(lambda: self._hit(service, t0, {status}), 15)
        self.cloud.clear_faults()
        return Episode("api_5xx_page", service, t0, fired, f"page {page} -> {status}")

    def _api_outage(self) -> Episode:
        service = self._service()
        t0 = time.time()
        self.cloud.fail(service, 503)
        time.sleep(3)
        # A plugin in back-off may not ask within 3 s: hold the outage until
        # it has met it (as the other API faults wait for their hit).
        fired = _wait(lambda: self._hit(service, t0, {503}), 15)
        self.cloud.clear_faults()
        return Episode("api_outage", service, t0, fired, "503 for 3 s or until met")

    def _api_timeout(self) -> Episode:
        service = self._service()
        t0 = time.time()
        self.cloud.delay(service, self.client_timeout + 1.5)
        time.sleep(5)
        fired = _wait(lambda: self._hit(service, t0, None), 15)
        self.cloud.delay(service, 0)
        return Episode("api_timeout", service, t0, fired, f"held {self.client_timeout + 1.5} s")

    def _api_corrupt(self) -> Episode:
        service = self._service()
        mode = self.rng.choice(CORRUPTIONS)
        t0 = time.time()
        self.cloud.corrupt(service, mode)
        fired = _wait(lambda: self._hit(service, t0, None), 15)
        time.sleep(0.5)
        self.cloud.clear_faults()
        return Episode("api_corrupt", service, t0, fired, mode)

    def _keystone_down(self) -> Episode:
        mode = self.rng.choice(("refuse", "503"))
        t0 = time.time()
        self.cloud.keystone_down(True, mode)
        self.cloud.revoke_tokens()
        time.sleep(6)
        self.cloud.keystone_down(False)
        return Episode("keystone_down", "keystone", t0, True, mode)

    def _token_revoke(self) -> Episode:
        t0 = time.time()
        issued = self.cloud.tokens_issued
        self.cloud.revoke_tokens()
        fired = _wait(lambda: self.cloud.tokens_issued > issued, 15)
        return Episode("token_revoke", "keystone", t0, fired, "clients re-authenticate")

    # -- processes, broker, bus ------------------------------------------

    def worker_pids(self) -> dict[str, int]:
        """The latest pid of each worker, from the daemon's log."""
        pids: dict[str, int] = {}
        for line in list(self.daemon.logs):
            match = _STARTED.search(line)
            if match:
                pids[match.group(1)] = int(match.group(2))
        return pids

    def _worker_kill(self) -> Episode:
        name = self.rng.choice(COLLECTORS)
        pid = self.worker_pids()[name]
        started = self.daemon.count_logs(f"Started worker {name} ")
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        self.kills[name] += 1
        restarted = self.daemon.wait_until(
            lambda: self.daemon.count_logs(f"Started worker {name} ") > started, 60
        )
        detail = f"pid {pid}" + ("" if restarted else ", NOT restarted within 60 s")
        if not restarted:
            self.errors.append(f"worker {name} was not restarted after SIGKILL")
        return Episode("worker_kill", name, t0, True, detail)

    def _broker_cut(self) -> Episode:
        t0 = time.time()
        self.broker.close_all_connections()
        return Episode("broker_cut", "rabbitmq", t0, True, f"node {self.broker.node or 'default'}")

    def _bad_notification(self) -> Episode:
        for what in sorted(BAD_PAYLOADS):
            self.publisher.bad(what)
        return Episode(
            "bad_notification", "nova", time.time(), True, ", ".join(sorted(BAD_PAYLOADS))
        )


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def as_dicts(episodes: list[Episode]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in episodes]
