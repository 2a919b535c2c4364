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
``broker_cut``         the soak's own connections closed by the broker
``bad_notification``   a Nova notification the plugin must drop
``page_displaced``     a page's first record replaced by the page before's last
                       (listed twice, one lost), answered 200
``next_link_dropped``  page 0 of a walk of two pages or more without its next link
``bad_record``         one server or volume listed with a wrong field (an integer
                       name, a null vm_state, a size that is no number) for 3 s
``listing_hung``       a service's answers trickled a byte a second (no read
                       timeout fires) until its plugin is declared hung
``clock_skew``         the APIs' clock 60 s behind the daemon's for 8 s
``daemon_restart``     SIGTERM or SIGKILL of the daemon's main process, started again
                       on its durable state; the checker consumer resumes from its
                       saved position (metrics counters carried over the restart)
=====================  ============================================================

The faults no client sees (the last five) are armed only on a plugin that
has completed a full listing since its worker last started: a resync's
sweep (a restarted worker's first listing) is not held as a mass delete and
keeps no unconvertible record (see README, what can go wrong).
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
from tests.soak import probes
from tests.soak.nova_events import BAD_PAYLOADS
from tests.soak.probes import Broker
from tests.soak.publisher import NovaPublisher
from tests.soak.setup import PAGE_SIZE

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
    "page_displaced",
    "next_link_dropped",
    "bad_record",
    "listing_hung",
    "clock_skew",
    "daemon_restart",
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
#: Paged walks the page faults target: service -> (collection, fake kind, plugin).
WALKS = {
    "nova": ("servers/detail", "servers", "nova.instance"),
    "cinder": ("volumes/detail", "volumes", "cinder.volume"),
    "neutron": ("ports", "ports", "neutron.port"),
}
#: Bad fields a listing may carry: service -> ((field, value, converts), ...).
BAD_FIELDS = {
    "nova": (("name", 12345, True), ("OS-EXT-STS:vm_state", None, False)),
    "cinder": (("size", "big", False),),
}
HUNG = "a poll cycle has run for"


def plan(
    rng: random.Random,
    seconds: float,
    quick: bool,
    every: tuple[str, ...] = KINDS,
    repeats: int = 5,
) -> list[tuple[float, str]]:
    """``(offset in seconds, kind)`` of each episode, in order (each of ``every`` once)."""
    kinds = list(every)
    rng.shuffle(kinds)
    # A quick run still repeats some kinds; a long one adds one about every 9 s.
    extra = repeats if quick else max(0, int(seconds // 9) - len(kinds))
    kinds += rng.choices(every, k=extra)
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

    #: Every kind this chaos can run (a run injects each at least once).
    kinds: tuple[str, ...] = KINDS

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
        self.hangs: collections.Counter[str] = collections.Counter()
        self.unconvertible = 0  # bad_record episodes whose record cannot convert
        self.errors: list[str] = []
        #: Set by the runner: the daemon's /metrics, and what resumes the checker.
        self.metrics_url = ""
        self.on_daemon_restart: Callable[[], None] = lambda: None
        #: Counter samples of the daemon's earlier incarnations (added to the last one's).
        self.carried: dict[Any, float] = {}

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

    def uncounted(self, window: int) -> tuple[int, str]:
        """How many notifications may have been counted by nobody, and why.

        A daemon restart may take its notification worker's last report with it
        (``window`` notifications each).
        """
        restarts = self.fired("daemon_restart")
        return restarts * window, f"{restarts} daemon restarts"

    def carry(self, metrics_url: str) -> None:
        """Keep the counters of a daemon about to go (added to the last one's at the end)."""
        counters = probes.parse(probes.fetch(metrics_url + "/metrics"))
        for key, value in counters.items():
            if key[0].endswith("_total"):
                self.carried[key] = self.carried.get(key, 0.0) + value

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

    def _daemon_restart(self) -> Episode:
        sig = self.rng.choice((signal.SIGTERM, signal.SIGKILL))
        self.carry(self.metrics_url)
        ready = self.daemon.count_logs("Ready:")
        serving = self.daemon.count_logs("RPC view serving")
        t0 = time.time()
        self.daemon.proc.send_signal(sig)
        self.daemon.proc.wait(30)
        time.sleep(1.0)  # its workers see their parent gone and exit
        self.daemon.start()
        up = self.daemon.wait_until(
            lambda: (
                self.daemon.count_logs("Ready:") > ready
                and self.daemon.count_logs("RPC view serving") > serving
            ),
            120,
        )
        if not up:
            self.errors.append(f"the daemon was not ready within 120 s of its {sig.name}")
        else:
            self.on_daemon_restart()
        return Episode("daemon_restart", sig.name, t0, up, f"pid {self.daemon.proc.pid}")

    def _broker_cut(self) -> Episode:
        t0 = time.time()
        cut = self.broker.cut_connections(os.getpid())
        return Episode("broker_cut", "rabbitmq", t0, cut > 0, f"{cut} connections of the soak's")

    def _bad_notification(self) -> Episode:
        for what in sorted(BAD_PAYLOADS):
            self.publisher.bad(what)
        return Episode(
            "bad_notification", "nova", time.time(), True, ", ".join(sorted(BAD_PAYLOADS))
        )

    # -- faults no client sees -------------------------------------------

    def _settled(self, plugins: tuple[str, ...], timeout: float = 30.0) -> bool:
        """Whether each plugin completed a full listing since its worker last started."""

        def settled() -> bool:
            logs = list(self.daemon.logs)
            for plugin in plugins:
                started = max(
                    (i for i, line in enumerate(logs) if f"Started worker {plugin} " in line),
                    default=-1,
                )
                done = f"{plugin}: full cycle listed"
                if not any(done in line and line.endswith("complete") for line in logs[started:]):
                    return False
            return True

        return _wait(settled, timeout)

    def _between_cycles(self, plugin: str, timeout: float = 10.0) -> None:
        """Wait for the plugin's cycle in progress to end: its next walk then starts,
        every page of it, after a fault armed now (not half before it, against a
        cloud that churned in between)."""

        def cycles() -> int:
            return sum(
                self.daemon.count_logs(f"{plugin}: {k} cycle listed") for k in ("full", "delta")
            )

        before = cycles()
        self.daemon.wait_until(lambda: cycles() > before, timeout)

    def _fired(self, kind: str, before: int, timeout: float = 15.0) -> bool:
        return _wait(lambda: self.cloud.faults.fired().get(kind, 0) > before, timeout)

    def _walk(self) -> str:
        """A service whose walk has two full pages or more now (Nova's always has)."""
        fit = [
            s for s, (_, kind, _) in WALKS.items() if len(self.cloud.keys(kind)) >= 2 * PAGE_SIZE
        ]
        return self.rng.choice(sorted(fit)) if fit else "nova"

    def _page_displaced(self) -> Episode:
        service = self._walk()
        collection, _, plugin = WALKS[service]
        self._settled((plugin,))
        self._between_cycles(plugin)
        before = self.cloud.faults.fired().get("displace", 0)
        t0 = time.time()
        self.cloud.displace(service, page=1, collection=collection)
        fired = self._fired("displace", before)
        self.cloud.clear_faults()
        return Episode("page_displaced", service, t0, fired, f"{collection} page 1")

    def _next_link_dropped(self) -> Episode:
        # Page 0 of a walk of two full pages or more: the cut loses a page or more,
        # which Nova's full-page rule refuses and the mass-delete hold holds.
        service = self._walk()
        collection, _, plugin = WALKS[service]
        self._settled((plugin,))
        self._between_cycles(plugin)
        before = self.cloud.faults.fired().get("drop_next", 0)
        t0 = time.time()
        self.cloud.drop_next(service, page=0, collection=collection)
        fired = self._fired("drop_next", before)
        self.cloud.clear_faults()
        return Episode("next_link_dropped", service, t0, fired, f"{collection} page 0")

    def _bad_record(self) -> Episode:
        service = self.rng.choice(sorted(BAD_FIELDS))
        _, kind, plugin = WALKS[service]
        field, value, converts = self.rng.choice(BAD_FIELDS[service])
        key = self.rng.choice(sorted(self.cloud.keys(kind)))
        self._settled((plugin,))
        before = self.cloud.faults.fired().get("bad_record", 0)
        t0 = time.time()
        self.cloud.bad_record(service, key, field, value)
        fired = self._fired("bad_record", before)
        time.sleep(3)
        self.cloud.clear_faults()
        if fired and not converts:
            self.unconvertible += 1
        return Episode("bad_record", service, t0, fired, f"{kind} {key}: {field} = {value!r}")

    def _listing_hung(self) -> Episode:
        service = self.rng.choice(("heat", "ironic"))
        (plugin,) = PLUGINS_BY_SERVICE[service]
        hung = self.daemon.count_logs(f"{plugin}: {HUNG}")
        started = self.daemon.count_logs(f"Started worker {plugin} ")
        t0 = time.time()
        self.cloud.trickle(service, 1.0)
        fired = self.daemon.wait_until(
            lambda: self.daemon.count_logs(f"{plugin}: {HUNG}") > hung, 40
        )
        self.cloud.trickle(service, 0)
        if fired:
            self.hangs[plugin] += 1
            if not self.daemon.wait_until(
                lambda: self.daemon.count_logs(f"Started worker {plugin} ") > started, 30
            ):
                self.errors.append(f"worker {plugin} was not restarted after it hung")
        return Episode("listing_hung", plugin, t0, fired, f"{service} trickled 1 byte/s")

    def _clock_skew(self) -> Episode:
        t0 = time.time()
        self.cloud.clock_offset(-60)
        time.sleep(8)
        self.cloud.clock_offset(0)
        return Episode("clock_skew", "nova", t0, True, "APIs 60 s behind for 8 s")


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def as_dicts(episodes: list[Episode]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(e) for e in episodes]
