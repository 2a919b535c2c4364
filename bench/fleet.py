"""B11 (failover time) on a real fleet, and the fleet's parts that B12 uses too.

Real parts, as the fleet's functional tests have them
(:mod:`synchronizer_fakecloud.testbed`): every member is the real daemon
as a subprocess, coordinated through a Redis of the benchmark's own
(tooz), on a PostgreSQL server of its own (its own data directory and
port), publishing on the real RabbitMQ; the fake cloud runs in its own
process (:class:`bench.cloud._Cloud`).

* **B11**: three members run ``nova`` and ``cinder``; while servers change,
  the Nova owner is SIGKILLed (workers too: a host that died).  The time
  is from the kill until a watcher (the real client, in this process)
  receives the first change the new owner committed: the first
  ``nova.instance`` change whose ``seq`` is above the one the new owner
  says it starts from (``Partition nova: running, term T, from seq S``),
  so a re-sent change of the old owner's does not count.  Baseline: the
  configured ``heartbeat_timeout`` plus one period, as configured for
  this run.

B12 (:mod:`bench.scaleout`) runs on the same parts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import common
from bench.bus import URL as TRANSPORT_URL
from bench.cloud import _Cloud, _cloud
from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.model import Change, Synced
from synchronizer.outputs import client
from synchronizer_fakecloud import testbed
from synchronizer_fakecloud.testbed import Daemon

TIMEOUT = 3  # B11's [coordination] heartbeat_timeout, seconds, as the fleet's tests
PERIOD = TIMEOUT / 3.0  # the ownership loop's period (a third of the timeout) = the collectors'
B11_TARGET = 1.0
MEMBERS = ("m1", "m2", "m3")
GAINED = re.compile(r"Partition (\w+): running, term (\d+), from seq (\d+)")
CYCLE = re.compile(r"(\S+): full cycle listed (\d+) entities, .* in ([0-9.]+) s, complete")


# -- the parts ------------------------------------------------------------------------


class _Fleet:
    """The members of one run: their configs, daemons and the store's engine."""

    def __init__(self, workdir: Path, cloud: _Cloud, redis: testbed.Redis, database: str) -> None:
        self.workdir, self.cloud, self.redis, self.database = workdir, cloud, redis, database
        self.u = uuid.uuid4().hex[:10]
        self.paths: dict[str, Path] = {}
        self.daemons: dict[str, Daemon] = {}
        self.engine: Any = None

    def configure(
        self,
        members: tuple[str, ...],
        plugins: dict[str, dict[str, Any]],
        timeout: int = TIMEOUT,
        **extra: Any,
    ) -> None:
        for m in members:
            text = testbed.member_config(
                m,
                self.cloud,
                self.redis.url,
                self.database,
                timeout,
                plugins,
                coordination={"group": f"bench-{self.u}"},
                transport_url=TRANSPORT_URL,
                message_topic=f"bench_{self.u}",
                rpc_topic=f"bench_view_{self.u}",
                notification_pool=f"bench-{self.u}",
                worker_restart_delay=0.2,
                **extra,
            )
            self.paths[m] = testbed.write_config(self.workdir / f"{m}-{self.u}.conf", text)

    def start(self, member: str) -> Daemon:
        self.daemons[member] = Daemon(self.paths[member]).start()
        return self.daemons[member]

    def owners(self) -> dict[str, tuple[str | None, int]]:
        if self.engine is None:
            self.engine = sql.create_engine(self.database)
        return sql.owners(self.engine)

    def close(self) -> None:
        running = [d for d in self.daemons.values() if d.proc and d.proc.poll() is None]
        for d in running:  # all at once: each member's stop takes a few seconds
            d.signal(signal.SIGTERM)
        for d in running:
            with contextlib.suppress(Exception):
                d.stop(timeout=20)
        if self.engine is not None:
            self.engine.dispose()
        names = [f"bench_view_{self.u}", f"bench_{self.u}.info", f"bench_{self.u}.error"]
        names += [f"bench_view_{self.u}.fleet-{m}" for m in self.paths]
        with contextlib.suppress(Exception):
            testbed.delete_queues(names)


@contextlib.contextmanager
def _parts(servers: int, **extra: int) -> Iterator[tuple[Path, _Cloud, testbed.Redis, Any]]:
    """The fake cloud (its own process), a Redis and a PostgreSQL of our own."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    redis = postgres = None
    try:
        with _cloud(servers, **extra) as cloud:
            redis = testbed.Redis(workdir).start()
            postgres = testbed.Postgres().start()
            yield workdir, cloud, redis, postgres
    finally:
        for part in (redis, postgres):
            if part is not None:
                part.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return found


class _Churn:
    """Changes records of some kinds on a timer, on its own thread, until closed."""

    def __init__(self, cloud: _Cloud, every: float, **changes: dict[str, Any]) -> None:
        self.cloud, self.every, self.changes = cloud, every, changes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def _run(self) -> None:
        seed = 1000
        while not self._stop.wait(self.every):
            for kind, how in self.changes.items():
                seed += 1
                self.cloud.change(kind=kind, seed=seed, **how)

    def __enter__(self) -> _Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


# -- B11 ------------------------------------------------------------------------------


class _Arrivals:
    """A watcher's callback: when each change (type, seq) reached it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[float, str, int]] = []
        self.synced = threading.Event()

    def __call__(self, item: Any) -> None:
        now = time.monotonic()
        if isinstance(item, Synced):
            self.synced.set()
        elif isinstance(item, Change) and item.seq:
            with self.lock:
                self.seen.append((now, item.entity.type, item.seq))

    def first_above(self, type_: str, seq: int, after: float) -> float | None:
        with self.lock:
            times = [t for t, k, s in self.seen if k == type_ and s > seq and t > after]
        return min(times) if times else None


def _gained(
    daemons: list[Daemon], partition: str, after: float
) -> tuple[float, int, Daemon] | None:
    """When a member said it runs ``partition`` (after ``after``), the seq it starts from, it."""
    for d in daemons:
        with d._cond:
            lines = list(zip(d.log_times, d.logs, strict=False))
        for t, line in lines:
            match = GAINED.search(line)
            if t > after and match and match.group(1) == partition:
                return t, int(match.group(3)), d
    return None


def _steady(fleet: _Fleet, partitions: int, hold: float) -> str:
    """Wait until every partition has an owner, spread, unchanged for ``hold`` s; Nova's."""
    spread = min(partitions, len(fleet.daemons))
    last: dict[str, Any] = {}
    since = time.monotonic()

    def stable() -> bool:
        nonlocal since
        now = fleet.owners()
        if now != last:
            last.clear()
            last.update(now)
            since = time.monotonic()
        distinct = {o for o, _ in now.values()}
        return (
            len(now) == partitions
            and len(distinct) == spread
            and (time.monotonic() - since >= hold)
        )

    _wait(stable, 120, "the partitions to settle")
    return last["nova"][0]


def _failover(fleet: _Fleet, arrivals: _Arrivals) -> dict[str, float]:
    owner = _steady(fleet, 2, 3 * PERIOD)
    victim = fleet.daemons[owner]
    survivors = [d for m, d in fleet.daemons.items() if m != owner]
    killed = time.monotonic()
    victim.kill()
    gained_at, from_seq, heir = _wait(
        lambda: _gained(survivors, "nova", killed), 60, "a new nova owner"
    )
    first = _wait(
        lambda: arrivals.first_above("nova.instance", from_seq, killed),
        60,
        "the new owner's first change at the watcher",
    )
    ended, _, _, listing = _wait(
        lambda: next((c for c in _cycles(heir, gained_at) if c[1] == "nova.instance"), None),
        60,
        "the new owner's first listing",
    )
    return {
        "failover": first - killed,
        "to_gain": gained_at - killed,
        # The new owner's start: its collector let through from standby (or
        # spawned: an interpreter, the plugin), its first listing, then
        # commit, sink and watcher.
        "to_listing": ended - listing - gained_at,
        "listing": listing,
        "victim": owner,
    }


def b11(servers: int, failovers: int) -> dict[str, Any]:
    plugins = {p: {"period": PERIOD} for p in ("nova.instance", "cinder.volume")}
    with _parts(servers, volumes=max(1, servers // 10)) as (workdir, cloud, redis, postgres):
        fleet = _Fleet(workdir, cloud, redis, postgres.database("bench_b11"))
        fleet.configure(MEMBERS, plugins, sinks="message")
        handle = None
        try:
            for m in MEMBERS:
                fleet.start(m)
            _steady(fleet, 2, 0.0)
            conf = opts.parse(["--config-file", str(fleet.paths[MEMBERS[0]])], setup_logging=False)
            arrivals = _Arrivals()
            handle = client.watch(conf, None, arrivals, timeout=30)
            if not arrivals.synced.wait(60):
                raise RuntimeError("the watcher was not synced within 60 s")
            runs = []
            with _Churn(cloud, 0.3, servers={"count": 2}):
                for i in range(failovers):
                    runs.append(_failover(fleet, arrivals))
                    if i + 1 < failovers:  # the fleet is three again for the next one
                        again = fleet.start(runs[-1]["victim"])
                        again.wait_log(f"Fleet members: {', '.join(MEMBERS)}", timeout=60)
        finally:
            if handle is not None:
                handle.stop()
            fleet.close()
    return _b11(runs, servers)


def _b11(runs: list[dict[str, Any]], servers: int) -> dict[str, Any]:
    baseline = TIMEOUT + PERIOD
    value, spread = common.median_spread([r["failover"] for r in runs])
    to_gain, gain_spread = common.median_spread([r["to_gain"] for r in runs])
    start = {k: common.median_spread([r[k] for r in runs])[0] for k in ("to_listing", "listing")}
    return common.figure(
        value,
        "s",
        baseline,
        f"<= {B11_TARGET}x heartbeat_timeout + period",
        value / baseline <= B11_TARGET,
        spread=spread,
        runs=[round(r["failover"], 3) for r in runs],
        kill_to_new_owner_s=to_gain,
        kill_to_new_owner_spread=gain_spread,
        new_owner_to_its_listing_s=start["to_listing"],
        its_first_listing_s=start["listing"],
        heartbeat_timeout=TIMEOUT,
        period=PERIOD,
        servers=servers,
        loadavg_1m=round(os.getloadavg()[0], 1),
        note="SIGKILL of the Nova owner (3 members, Redis, PostgreSQL, RabbitMQ) while "
        "servers change, until a watcher receives the first change the new owner "
        "committed (seq above the one it starts from); baseline: heartbeat_timeout + "
        "one period as configured; kill_to_new_owner_s: until the new owner logs that "
        "it runs the partition; then new_owner_to_its_listing_s until its collector's "
        "first listing starts (its standby worker let through, or one spawned with "
        "standby_workers = false), which takes its_first_listing_s",
    )


def _cycles(d: Daemon, after: float) -> list[tuple[float, str, int, float]]:
    """(when, plugin, listed, seconds) of each complete full cycle a member logged."""
    with d._cond:
        lines = list(zip(d.log_times, d.logs, strict=False))
    out = []
    for t, line in lines:
        match = CYCLE.search(line)
        if t > after and match:
            out.append((t, match.group(1), int(match.group(2)), float(match.group(3))))
    return out
