"""B1 (steady-state full poll cycle) and B5 (delta vs full cycle) against the FakeCloud."""

from __future__ import annotations

import contextlib
import cProfile
import gc
import io
import multiprocessing
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from oslo_config import cfg

import synchronizer_plugins.openstack
from bench import common
from synchronizer import opts, plugin_loader, timeutil, wire
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.workers.collector import PollLoop
from synchronizer_fakecloud import FakeCloud
from synchronizer_fakecloud.clock import Clock

B1_TARGET = 1.10
B5_TARGET = 0.05
API_LATENCY = 0.1  # seconds per Nova request in the with_api_latency variant
PLUGIN = "nova.instance"


class _Offset:
    """A clock source shifted by ``offset`` seconds (to age the populated records)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


_CONF = """[service_credentials]
auth_type = password
auth_url = {auth_url}
username = admin
password = secret
project_name = admin
user_domain_id = default
project_domain_id = default

[{group}]
snapshot_interval = 3600
"""


def _plugin(cloud: _Cloud) -> Any:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    synchronizer_plugins.openstack.register_opts(conf)
    _, group = plugin_loader.resolve(conf, PLUGIN)
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_CONF.format(auth_url=cloud.auth_url, group=group))
        conf(["--config-file", path], project="synchronizer-bench")
        return plugin_loader.instantiate(conf, PLUGIN)
    finally:
        os.unlink(path)


def cloud_main(servers: int, conn: Connection, extra: dict[str, int] | None = None) -> None:
    """The FakeCloud in its own process, driven over ``conn``.

    It holds ``servers`` (on ``servers // 100`` hosts) and the ``extra``
    kinds ``populate`` takes (``volumes``, ``ports``...); it sends its auth
    URL and credentials first.  Commands: ``("age", seconds)`` sets the
    clock offset and answers the shifted time; ``("change", kwargs)``
    changes records (``kind`` in kwargs, servers by default); ``("delay",
    seconds)`` holds every Nova request that long; ``("stop", None)``.
    Apart from the client, as Nova is: in the benchmark's process its server
    threads would share the interpreter lock, and its 100,000 records the
    garbage collector's passes, with the client being measured.
    """
    source = _Offset()
    source.offset = -86400.0
    cloud = FakeCloud(clock=Clock(source))
    cloud.populate(servers=servers, hosts=max(1, servers // 100), **(extra or {}))
    cloud.start()
    try:
        conn.send((cloud.auth_url, cloud.credentials))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "age":
                source.offset = arg
                conn.send(source())
            elif command == "change":
                arg = dict(arg)
                conn.send(len(cloud.change(arg.pop("kind", "servers"), **arg)))
            elif command == "delay":
                cloud.delay("nova", arg)
                conn.send(arg)
    finally:
        cloud.stop()


class _Cloud:
    """Client side of :func:`cloud_main`; its methods may be called from any thread.

    ``auth_url`` and ``credentials`` are the cloud's, so that
    :func:`synchronizer_fakecloud.testbed.service_credentials` takes it as
    it takes a :class:`FakeCloud`.
    """

    def __init__(self, servers: int, **extra: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=cloud_main, args=(servers, child, extra), daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(600):
            raise RuntimeError("the fake cloud did not start within 600 s")
        self.auth_url: str
        self.auth_url, self.credentials = self.conn.recv()
        self._lock = threading.Lock()

    def _ask(self, command: str, arg: Any) -> Any:
        with self._lock:
            self.conn.send((command, arg))
            return self.conn.recv()

    def age(self, offset: float) -> float:
        """Shift the cloud's clock by ``offset`` seconds; its time now."""
        return self._ask("age", offset)

    def change(self, **kwargs: Any) -> int:
        return self._ask("change", kwargs)

    def delay(self, seconds: float) -> None:
        """Make Nova take ``seconds`` longer to answer each request."""
        self._ask("delay", seconds)

    def stop(self) -> None:
        with self._lock:
            self.conn.send(("stop", None))
        self.process.join(30)


@contextlib.contextmanager
def _cloud(servers: int, **extra: int) -> Iterator[_Cloud]:
    cloud = _Cloud(servers, **extra)
    try:
        yield cloud
    finally:
        cloud.stop()


def _fetch_parse(plugin: Any) -> int:
    """Baseline: walk the same listing with the same client, nothing else."""
    query = {"all_tenants": "True", "limit": plugin.options.page_size}
    return sum(1 for _ in plugin.pages("/servers/detail", "servers", query))


class _Delivery:
    """The dispatcher (on ``store``, or the in-memory one) and one subscriber.

    Where a cycle's changes end up.
    """

    def __init__(self, store: Any = None) -> None:
        self.dispatcher = Dispatcher(store=store) if store is not None else Dispatcher()
        self.received = 0
        self.sub = Subscription([PLUGIN], self._count, name="bench-b1")
        self.dispatcher.add(self.sub, snapshot=False)
        self.sub.start()
        self.sent: list[wire.Message] = []

    def _count(self, item: Any) -> None:
        self.received += 1

    def send(self, msg: wire.Message) -> None:
        self.sent.append(msg)
        if isinstance(msg, wire.Changes):
            self.dispatcher.dispatch(msg.decode())

    def cycle(self, loop: PollLoop) -> bool:
        """One poll cycle, until the subscriber has been handed every change."""
        ok = loop.cycle()
        if not self.sub.wait_idle(120):
            raise RuntimeError("the subscriber did not drain within 120 s")
        return ok

    def close(self) -> None:
        self.sub.close()
        self.dispatcher.close()


def _full_cycle(loop: PollLoop, delivery: _Delivery) -> float:
    loop.last_full = None  # force a full listing
    gc.collect()
    t, ok = common.timed(lambda: delivery.cycle(loop))
    assert ok, "full cycle incomplete"
    return t


def _delta_cycle(loop: PollLoop, delivery: _Delivery, cloud: _Cloud, i: int, n: int) -> float:
    # Each run's changes sit 100 s after the last run's, in the clock's past,
    # and the loop's "since" is set just before them: the delta lists exactly them.
    stamp = cloud.age(-43200.0 + 100.0 * i)
    cloud.change(count=n)
    loop.last_success = timeutil.normalize(stamp + 4.0)
    loop.last_full = time.monotonic()
    gc.collect()
    t, ok = common.timed(lambda: delivery.cycle(loop))
    assert ok, "delta cycle incomplete"
    return t


def _setup(cloud: _Cloud, delivery: _Delivery) -> tuple[Any, PollLoop]:
    plugin = _plugin(cloud)
    loop = PollLoop(plugin, PLUGIN, delivery.send, chunk_size=1000)
    assert delivery.cycle(loop), "first cycle incomplete"
    return plugin, loop


def b1_b5(
    servers: int, runs: int, delta_changes: int, latency_runs: int | None = None
) -> dict[str, dict[str, Any]]:
    delivery = _Delivery()
    with _cloud(servers) as cloud:
        plugin, loop = _setup(cloud, delivery)
        full, base, delta, told = [], [], [], []
        for i in range(runs):
            cloud.age(-80000.0 + i)
            cloud.change(fraction=0.01)
            before = delivery.received
            full.append(_full_cycle(loop, delivery))
            told.append(delivery.received - before)
            gc.collect()
            t, listed = common.timed(lambda: _fetch_parse(plugin))
            assert listed == servers, listed
            base.append(t)
        delta.extend(_delta_cycle(loop, delivery, cloud, i, delta_changes) for i in range(runs))
        last = delivery.sent[-1]  # the last delta cycle's CycleEnd
        b1 = _b1(full, base, servers)
        b1["delivered_per_cycle"] = told
        b1["with_api_latency"] = _with_latency(
            loop, delivery, cloud, plugin, latency_runs or runs, servers
        )
        if not b1["met"]:
            b1["profile"] = _profile(loop, cloud)
        plugin.close()  # its keystoneauth session is shared by the next plugin otherwise
    delivery.close()
    return {"B1": b1, "B5": _b5(delta, full, last, servers, delta_changes)}


def _with_latency(
    loop: PollLoop, delivery: _Delivery, cloud: _Cloud, plugin: Any, runs: int, servers: int
) -> dict[str, Any]:
    """B1 again with Nova answering each page ``API_LATENCY`` seconds later.

    The fake cloud builds a page of 1,000 servers in about 10 ms; a real
    Nova takes far longer (the database, the cells, the view builder).
    With that time in the listing, reading ahead overlaps the collector's
    work with it: this shows what the ratio becomes when the API, not the
    client, is the slow part.  Reported beside B1, not instead of it.
    """
    cloud.delay(API_LATENCY)
    try:
        full, base = [], []
        for i in range(runs):
            cloud.age(-60000.0 + i)
            cloud.change(fraction=0.01)
            full.append(_full_cycle(loop, delivery))
            gc.collect()
            t, listed = common.timed(lambda: _fetch_parse(plugin))
            assert listed == servers, listed
            base.append(t)
    finally:
        cloud.delay(0.0)
    value, spread = common.median_spread(full)
    b, b_spread = common.median_spread(base)
    return {
        "api_latency_s": API_LATENCY,
        "value": value,
        "baseline": b,
        "ratio": statistics.median(f / x for f, x in zip(full, base, strict=True)),
        "spread": spread,
        "baseline_spread": b_spread,
    }


def _profile(loop: PollLoop, cloud: _Cloud) -> str:
    """Where the client's time goes in one full cycle (cProfile sees this thread only)."""
    cloud.age(-70000.0)
    cloud.change(fraction=0.01)
    loop.last_full = None
    prof = cProfile.Profile()
    prof.runcall(loop.cycle)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(24)
    lines = [ln.strip() for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ncalls"))
    return " | ".join(lines[start + 1 : start + 25])


def _b1(full: list[float], base: list[float], servers: int) -> dict[str, Any]:
    value, spread = common.median_spread(full)
    b, b_spread = common.median_spread(base)
    # Each run's cycle is timed right before its own baseline listing: the
    # median of these paired ratios is steadier than a ratio of medians when
    # the machine's load drifts during the run.
    ratios = [f / x for f, x in zip(full, base, strict=True)]
    ratio = statistics.median(ratios)
    rec = common.figure(
        value,
        "s/cycle",
        b,
        f"<= {B1_TARGET}x",
        ratio <= B1_TARGET,
        spread=spread,
        baseline_spread=b_spread,
        ratio_spread=[min(ratios), max(ratios)],
        ratio_of_medians=value / b,
        servers=servers,
        note="fetch, parse, convert, fingerprint, diff, dispatch (ledger) and hand-off "
        "to a subscriber's callback; ratio: median of per-run ratios; FakeCloud in its "
        "own process",
    )
    rec["ratio"] = ratio
    return rec


_DELTA_STATS = ("full", "listed", "updated", "complete")


def _b5(
    delta: list[float], full: list[float], last: Any, servers: int, changed: int
) -> dict[str, Any]:
    value, spread = common.median_spread(delta)
    b, _ = common.median_spread(full)
    return common.figure(
        value,
        "s/cycle",
        b,
        f"<= {B5_TARGET:.0%} of a full cycle",
        value / b <= B5_TARGET,
        spread=spread,
        servers=servers,
        changed=changed,
        last_delta_stats={k: getattr(last, k, None) for k in _DELTA_STATS},
    )
