"""B1 (steady-state full poll cycle) and B5 (delta vs full cycle) against the FakeCloud."""

from __future__ import annotations

import contextlib
import cProfile
import gc
import io
import os
import pstats
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

import plugins.openstack
from bench import common
from synchronizer import loader, opts, timeutil
from synchronizer.fakecloud import FakeCloud
from synchronizer.fakecloud.clock import Clock
from synchronizer.worker import PollLoop

B1_TARGET = 1.10
B5_TARGET = 0.05
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


def _plugin(cloud: FakeCloud) -> Any:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    plugins.openstack.register_opts(conf)
    _, group = loader.resolve(conf, PLUGIN)
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_CONF.format(auth_url=cloud.auth_url, group=group))
        conf(["--config-file", path], project="synchronizer-bench")
        return loader.instantiate(conf, PLUGIN)
    finally:
        os.unlink(path)


@contextlib.contextmanager
def _cloud(servers: int) -> Iterator[tuple[FakeCloud, _Offset]]:
    source = _Offset()
    source.offset = -86400.0
    cloud = FakeCloud(clock=Clock(source))
    cloud.populate(servers=servers, hosts=max(1, servers // 100))
    cloud.start()
    try:
        yield cloud, source
    finally:
        cloud.stop()


def _fetch_parse(plugin: Any) -> int:
    """Baseline: walk the same listing with the same client, nothing else."""
    query = {"all_tenants": "True", "limit": plugin.options.page_size}
    return sum(1 for _ in plugin.pages("/servers/detail", "servers", query))


def _full_cycle(loop: PollLoop) -> float:
    loop.last_full = None  # force a full listing
    gc.collect()
    t, ok = common.timed(loop.cycle)
    assert ok, "full cycle incomplete"
    return t


def _delta_cycle(loop: PollLoop, cloud: FakeCloud, source: _Offset, i: int, n: int) -> float:
    # Each run's changes sit 100 s after the last run's, in the clock's past,
    # and the loop's "since" is set just before them: the delta lists exactly them.
    source.offset = -43200.0 + 100.0 * i
    stamp = source()
    cloud.change("servers", count=n)
    loop.last_success = timeutil.normalize(stamp + 4.0)
    loop.last_full = time.monotonic()
    gc.collect()
    t, ok = common.timed(loop.cycle)
    assert ok, "delta cycle incomplete"
    return t


def _setup(servers: int, cloud: FakeCloud) -> tuple[Any, PollLoop, list]:
    plugin = _plugin(cloud)
    sent: list = []
    loop = PollLoop(plugin, PLUGIN, sent.append, chunk_size=1000)
    assert loop.cycle(), "first cycle incomplete"
    return plugin, loop, sent


def b1_b5(servers: int, runs: int, delta_changes: int) -> dict[str, dict[str, Any]]:
    with _cloud(servers) as (cloud, source):
        plugin, loop, sent = _setup(servers, cloud)
        full, base, delta = [], [], []
        for i in range(runs):
            source.offset = -80000.0 + i
            cloud.change("servers", fraction=0.01)
            full.append(_full_cycle(loop))
            gc.collect()
            t, listed = common.timed(lambda: _fetch_parse(plugin))
            assert listed == servers, listed
            base.append(t)
        delta.extend(_delta_cycle(loop, cloud, source, i, delta_changes) for i in range(runs))
        last = sent[-1][2]
        b1 = _b1(full, base, servers)
        if not b1["met"]:
            b1["profile"] = _profile(loop, cloud, source)
    return {"B1": b1, "B5": _b5(delta, full, last, servers, delta_changes)}


def _profile(loop: PollLoop, cloud: FakeCloud, source: _Offset) -> str:
    """Where the client's time goes in one full cycle (cProfile sees this thread only)."""
    source.offset = -70000.0
    cloud.change("servers", fraction=0.01)
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
    ratios = [f / x for f, x in zip(full, base, strict=True)]
    return common.figure(
        value,
        "s/cycle",
        b,
        f"<= {B1_TARGET}x",
        value / b <= B1_TARGET,
        spread=spread,
        baseline_spread=b_spread,
        ratio_spread=[min(ratios), max(ratios)],
        servers=servers,
        note="in-process FakeCloud (server threads share the GIL with the client)",
    )


def _b5(
    delta: list[float], full: list[float], last: dict, servers: int, changed: int
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
        last_delta_stats={k: last.get(k) for k in ("full", "listed", "updated", "complete")},
    )
