"""B11 (failover time) and B12 (three members against one) on a real fleet.

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
* **B12**: three services (Nova servers, Cinder volumes, Neutron ports)
  of ``n`` entities each, polled by one member holding the three
  partitions, then by three members holding one each (a fresh database
  and tooz group each).  The cycle time is the full listings' as the
  collectors log it (``full cycle listed N entities ... in X s``), with
  1% of each service changed once a round; a layout's cycle time
  is its slowest service's median.  Ratio: three members / one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import statistics
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
# B12 measures throughput, not failover: the default lease.  With B11's 3 s,
# a member committing its first 300,000 entities on a loaded 2-core machine
# missed its 2 s renewal deadline and gave all its partitions up, again and again.
B12_TIMEOUT = 10
B11_TARGET = 1.0
B12_TARGET = 0.5
MEMBERS = ("m1", "m2", "m3")
SERVICES = {"nova.instance": "servers", "cinder.volume": "volumes", "neutron.port": "ports"}
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
        # The new owner's start: its collector spawned (an interpreter, the
        # plugin, a token), its first listing, then commit, sink and watcher.
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
        "first listing starts (a worker spawned), which takes its_first_listing_s",
    )


# -- B12 ------------------------------------------------------------------------------


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


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class _CpuWindow:
    """CPU used over a window by groups of processes, and by the whole machine."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.t0 = time.monotonic()
        self.groups = {g: {p: _cpu_ticks(p) for p in pids} for g, pids in groups.items()}
        self.machine0 = _machine_ticks()

    def close(self, rounds: int) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        used = {
            g: sum(max(0, _cpu_ticks(p) - t0) for p, t0 in pids.items()) / hz
            for g, pids in self.groups.items()
        }
        busy, total = (b - a for a, b in zip(self.machine0, _machine_ticks(), strict=True))
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(wall, 2),
            "cores_used": {g: round(u / wall, 2) for g, u in used.items()},
            "cpu_s_per_round": {g: round(u / rounds, 2) for g, u in used.items()},
            "machine_busy_cores": round(cores * busy / total, 2) if total else None,
            "cores": cores,
            "loadavg_1m": round(os.getloadavg()[0], 1),
        }


def _layout(workdir, cloud, redis, postgres, members, n, runs) -> dict[str, Any]:
    fleet = _Fleet(workdir, cloud, redis, postgres.database(f"bench_b12_{len(members)}"))
    plugins: dict[str, dict[str, Any]] = {p: {"period": PERIOD} for p in SERVICES}
    plugins["nova.instance"]["snapshot_interval"] = 0  # full listings, as the others'
    fleet.configure(
        members, plugins, B12_TIMEOUT, sinks="jsonl", jsonl_path="/dev/null", chunk_size=1000
    )
    try:
        t0 = time.monotonic()
        for m in members:
            fleet.start(m)
        settled = _wait(lambda: _listed(fleet, n, t0, 1), 1800, "every first listing")
        window = _CpuWindow(_pids(fleet, cloud))
        _rounds(fleet, cloud, n, settled, runs)
        cpu = window.close(runs)
        per_service = _per_service(fleet, settled, n, runs)
        first = {p: c[0] for p, c in _owner_cycles(fleet, t0, n).items()}
        owners = {m: len(_held(fleet, m)) for m in members}
        terms = {p: t for p, (_, t) in fleet.owners().items()}
    finally:
        fleet.close()
    return {
        "cycle_s": max(per_service.values()),
        "per_service_s": per_service,
        "first_listing_s": max(first.values()),
        "first_listing_per_service_s": first,
        "start_to_listed_s": round(settled - t0, 2),
        "cpu": cpu,
        "partitions_held": owners,
        "terms": terms,
        "heartbeat_timeout": B12_TIMEOUT,
    }


def _rounds(fleet: _Fleet, cloud: _Cloud, n: int, after: float, runs: int) -> None:
    """Wait for ``runs`` more cycles of every service; 1% of each changes once a round."""
    changed_for = 0
    deadline = time.monotonic() + 600 + 120 * runs
    while (done := _rounds_done(fleet, n, after)) < runs:
        if done >= changed_for:  # a round is over: its next cycles see 1% changed
            for kind in SERVICES.values():
                cloud.change(kind=kind, fraction=0.01, seed=1000 + changed_for)
            changed_for = done + 1
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {runs} rounds of cycles in time")
        time.sleep(0.2)


def _held(fleet: _Fleet, member: str) -> list[str]:
    return [p for p, (o, _) in fleet.owners().items() if o == member] if fleet.engine else []


def _owner_cycles(fleet: _Fleet, after: float, n: int) -> dict[str, list[float]]:
    """plugin → the durations of the complete full listings of ``n`` its current owner logged."""
    owners = fleet.owners()
    found: dict[str, list[float]] = {}
    for plugin in SERVICES:
        owner, _ = owners.get(plugin.split(".", 1)[0], (None, 0))
        if owner in fleet.daemons:
            cycles = _cycles(fleet.daemons[owner], after)
            found[plugin] = [s for _, p, k, s in cycles if p == plugin and k == n]
    return found


def _listed(fleet: _Fleet, n: int, after: float, count: int) -> float | None:
    """When each service has ``count`` full listings of ``n`` by its current owner; or None."""
    done = _listings(fleet, n, after)
    if done is None or min(len(t) for t in done.values()) < count:
        return None
    return max(t[count - 1] for t in done.values())


def _rounds_done(fleet: _Fleet, n: int, after: float) -> int:
    done = _listings(fleet, n, after)
    return 0 if done is None else min(len(t) for t in done.values())


def _listings(fleet: _Fleet, n: int, after: float) -> dict[str, list[float]] | None:
    """plugin → when its current owner logged each full listing of ``n`` (None: unsettled).

    Raises when the partitions keep changing hands (the figure would time a
    fleet that restarts its listings, not one that polls).
    """
    owners = fleet.owners()
    terms = {p: t for p, (_, t) in owners.items()}
    if terms and max(terms.values()) > 2 * len(fleet.daemons) + 2:
        raise RuntimeError(f"the partitions keep changing hands (terms {terms})")
    if len(owners) < len(SERVICES) or len({o for o, _ in owners.values()}) != len(fleet.daemons):
        return None
    found = {}
    for plugin in SERVICES:
        owner, _ = owners[plugin.split(".", 1)[0]]
        cycles = _cycles(fleet.daemons[owner], after)
        found[plugin] = [t for t, p, k, _ in cycles if p == plugin and k == n]
    return found


def _per_service(fleet: _Fleet, after: float, n: int, runs: int) -> dict[str, float]:
    return {p: statistics.median(c[:runs]) for p, c in _owner_cycles(fleet, after, n).items()}


def _pids(fleet: _Fleet, cloud: _Cloud) -> dict[str, list[int]]:
    """The members' main processes, their workers (the collectors), the cloud's."""
    groups: dict[str, list[int]] = {"members": [], "collectors": [], "cloud": [cloud.process.pid]}
    for d in fleet.daemons.values():
        if d.proc is not None and d.proc.poll() is None:
            groups["members"].append(d.proc.pid)
            groups["collectors"] += d.worker_pids()
    return groups


def b12(n: int, runs: int) -> dict[str, Any]:
    with _parts(n, volumes=n, ports=n) as (workdir, cloud, redis, postgres):
        one = _layout(workdir, cloud, redis, postgres, ("solo",), n, runs)
        three = _layout(workdir, cloud, redis, postgres, MEMBERS, n, runs)
    value, base = three["cycle_s"], one["cycle_s"]
    return common.figure(
        value,
        "s/cycle",
        base,
        f"<= {B12_TARGET}x one member's cycle",
        value / base <= B12_TARGET,
        three_members=three,
        one_member=one,
        first_listing_ratio=three["first_listing_s"] / one["first_listing_s"],
        entities_per_service=n,
        runs=runs,
        note="full listings of Nova servers, Cinder volumes and Neutron ports (n each) "
        "with 1% of each changed once a round, from the collectors' cycle logs; "
        "a layout's cycle: its slowest service's median; baseline: one member holding "
        "the three partitions, same run; cpu: cores busy in the measured window (the "
        "members' processes, the cloud's, the whole machine's, shared with other work)",
    )
