"""B6 (latency) and B7 (throughput) of the notification path over RabbitMQ.

A Nova ``instance.update`` notification (versioned, as Nova sends it) is
published on the real broker and travels the synchronizer's whole inbound
path: the notification worker process (oslo.messaging listener,
``nova.notifications`` conversion, fingerprint), the pipe, the dispatcher's
ledger and a subscriber's callback thread, with the default listener
settings (the batch listener, 100 messages or 5 ms) unless ``options``
says otherwise.  The floor is a bare
oslo.messaging notification listener (one message a call, threading
executor) in the benchmark process, consuming the same kind of messages.

B6: messages published at a steady rate; latency = callback time - publish
time (both in this process).  B7: messages queued first (the bare listener's pool
and one pool per setting in ``B7_SETTINGS`` each get a copy), then drained;
rate = messages / (last arrival - first arrival); every message must arrive.
The settings: the defaults (one worker, the batch listener), the plain
listener (one message a call), and the batch listener in two worker
processes with larger batches, the throughput configuration (the
figure's value; all three are reported).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import kombu
from oslo_config import cfg

from bench import common
from synchronizer import Synchronizer, backend, opts

URL = "rabbit://guest:guest@127.0.0.1:5672/"
EXCHANGE = "nova"
PLUGIN = "nova.notifications"
B6_P50_MS = 3.0
B6_P99_MS = 20.0
B6_FLOOR_FACTOR = 1.5
B7_TARGET = 5000.0
BATCH_OPTIONS = {"notification_batch_size": 256, "notification_batch_timeout": 0.01}
# B7's settings: the defaults, the plain listener (one message a call), and
# the batch listener in two worker processes (what an operator sets for throughput).
B7_SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "plain": {"notification_batch_size": 1},
    "batch_2_workers": {**BATCH_OPTIONS, "notification_workers": 2},
}
B7_HEADLINE = "batch_2_workers"


def available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def payload(key: str, i: int) -> dict[str, Any]:
    """A versioned ``InstanceUpdatePayload`` as Nova sends it (abridged to what maps)."""
    flavor = {
        "nova_object.name": "FlavorPayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.4",
        "nova_object.data": {"name": "m1.small", "memory_mb": 2048, "vcpus": 1},
    }
    data = {
        "uuid": key,
        "tenant_id": "6f70656e737461636b20342065766572",
        "user_id": "fake",
        "state": "active",
        "task_state": None,
        "power_state": "running",
        "display_name": f"bench-{i}",
        "host": f"compute-{i % 100:04d}",
        "node": f"compute-{i % 100:04d}.example.org",
        "availability_zone": "nova",
        "flavor": flavor,
        "image_uuid": "a2459075-d96c-40d5-893e-577ff92e721c",
        "created_at": "2026-01-01T00:00:00Z",
        "metadata": {"bench": str(i)},
        "block_devices": [],
    }
    return {
        "nova_object.name": "InstanceUpdatePayload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.9",
        "nova_object.data": data,
    }


class _Arrivals:
    """Arrival times by key, and a way to wait for a count of them."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()

    def note(self, key: str) -> None:
        now = time.perf_counter()
        with self.cond:
            self.at.setdefault(key, now)
            self.cond.notify_all()

    def wait(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.at) >= count, timeout)

    def rate(self) -> float:
        times = sorted(self.at.values())
        return (len(times) - 1) / (times[-1] - times[0])


class _BareEndpoint:
    def __init__(self, arrivals: _Arrivals) -> None:
        self.arrivals = arrivals

    def info(self, ctxt: Any, publisher_id: str, event_type: str, body: Any, metadata: Any):
        self.arrivals.note(body["nova_object.data"]["uuid"])


def bare_listener_main(topic: str, pool: str, count: int, conn: Connection) -> None:
    """A bare listener process: report ready, then the arrival times of ``count`` messages.

    In its own process, like the notification worker, so that neither
    shares the publisher's interpreter; ``time.perf_counter`` is the
    system-wide monotonic clock, comparable between processes.
    """
    oslo_messaging = backend.messaging()
    conf = cfg.ConfigOpts()
    conf([], project="synchronizer-bench")
    transport = oslo_messaging.get_notification_transport(conf, url=URL)
    arrivals = _Arrivals()
    target = oslo_messaging.Target(topic=topic, exchange=EXCHANGE)
    listener = oslo_messaging.get_notification_listener(
        transport, [target], [_BareEndpoint(arrivals)], pool=pool
    )
    listener.start()
    time.sleep(1.0)  # queue declared and consuming
    conn.send("ready")
    while conn.poll(None):
        wanted = conn.recv()
        if wanted is None:
            break
        arrivals.wait(wanted, max(120.0, wanted / 200.0))
        with arrivals.cond:
            conn.send(dict(arrivals.at))
            arrivals.at.clear()
    listener.stop()
    listener.wait()
    transport.cleanup()


class _BareProcess:
    """Drives :func:`bare_listener_main` in a spawned process."""

    def __init__(self, topic: str, pool: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=bare_listener_main, args=(topic, pool, 0, child), daemon=True
        )
        self.process.start()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            raise RuntimeError("the bare listener did not start within 60 s")

    def arrivals(self, count: int) -> dict[str, float]:
        """Wait for ``count`` messages (since the last call); their arrival times."""
        self.conn.send(count)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.process.join(30)


class _Bench:
    """The broker names of one run; deletes its queues at the end."""

    def __init__(self, workdir: Path, options: dict[str, Any] | None = None) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.options = options or {}
        self.workdir = workdir
        self.topics: set[str] = set()
        self.pools: set[str] = set()

    def topic(self, name: str) -> str:
        topic = f"bench_{name}_{self.run}"
        self.topics.add(topic)
        return topic

    def pool(self, name: str) -> str:
        pool = f"bench-{name}-{self.run}"
        self.pools.add(pool)
        return pool

    def conf_file(
        self, topics: list[str], pool: str, options: dict[str, Any] | None = None
    ) -> Path:
        path = self.workdir / f"bench-{pool}.conf"
        merged = {**self.options, **(options or {})}
        extra = "".join(f"{k} = {v}\n" for k, v in merged.items())
        path.write_text(
            "[DEFAULT]\n"
            f"plugins = {PLUGIN}\n"
            f"transport_url = {URL}\n"
            f"notification_pool = {pool}\n"
            f"log_file = {self.workdir / 'synchronizer.log'}\n"
            "sinks =\n"
            f"{extra}"
            f"[{PLUGIN}]\n"
            "format = versioned\n"
            f"topics = {', '.join(topics)}\n"
            "volume_relations = true\n"
        )
        return path

    def cleanup(self) -> None:
        names = [f"{t}.{p}" for t in self.topics for p in ("info", "error")] + list(self.pools)
        with contextlib.suppress(Exception), kombu.Connection(URL.replace("rabbit", "amqp")) as c:
            channel = c.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)


@contextlib.contextmanager
def _synchronizer(path: Path, arrivals: _Arrivals) -> Iterator[Synchronizer]:
    conf = opts.parse(["--config-file", str(path)], setup_logging=False)
    sync = Synchronizer(conf)
    sync.register(
        ["nova.instance"], lambda change: arrivals.note(change.entity.key), snapshot=False
    )
    sync.start()
    try:
        deadline = time.monotonic() + 60
        while sync.status.states.get(PLUGIN, ("",))[0] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the notification worker did not start within 60 s")
            time.sleep(0.05)
        time.sleep(1.5)  # the listener declares its queue right after the plugins load
        yield sync
    finally:
        sync.stop()


def publisher_main(topic: str, count: int, rate: float, conn: Connection) -> None:
    """Publish ``count`` messages (at ``rate``/s, 0: at once); send back key -> send time.

    In its own process, like Nova: a publisher in the measured process
    would take the interpreter lock from the threads being measured.
    """
    oslo_messaging = backend.messaging()
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-bench")
    conf.set_override("control_exchange", EXCHANGE)
    transport = oslo_messaging.get_notification_transport(conf, url=URL)
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="nova-compute:bench", driver="messagingv2", topics=[topic]
    )
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(count):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        key = str(uuid.uuid4())
        sent[key] = time.perf_counter()
        notifier.info({}, "instance.update", payload(key, i))
    transport.cleanup()
    conn.send(sent)


def _publish(topic: str, count: int, rate: float = 0.0) -> dict[str, float]:
    """Run :func:`publisher_main` in a spawned process; key -> time sent."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=publisher_main, args=(topic, count, rate, child), daemon=True)
    process.start()
    child.close()
    sent = parent.recv()
    process.join(30)
    return sent


def _latencies(sent: dict[str, float], arrivals: _Arrivals) -> list[float]:
    return [(arrivals.at[k] - t) * 1000.0 for k, t in sent.items() if k in arrivals.at]


def _percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1]


def _b6(bench: _Bench, seconds: float, rate: float) -> dict[str, Any]:
    count = int(seconds * rate)
    ours_arrivals = _Arrivals()
    topic = bench.topic("latency")
    with _synchronizer(bench.conf_file([topic], bench.pool("sync-b6")), ours_arrivals):
        _publish(topic, 200, rate)  # warm up connections and paths
        ours_arrivals.wait(200, 30)
        ours_arrivals.at.clear()
        sent = _publish(topic, count, rate)
        ours_arrivals.wait(count, 60)
    ours = _latencies(sent, ours_arrivals)
    floor_topic = bench.topic("latency_floor")
    bare = _BareProcess(floor_topic, bench.pool("bare-b6"))
    floor_arrivals = _Arrivals()
    try:
        _publish(floor_topic, 200, rate)
        bare.arrivals(200)
        floor_sent = _publish(floor_topic, count, rate)
        floor_arrivals.at = bare.arrivals(count)
    finally:
        bare.close()
    floor = _latencies(floor_sent, floor_arrivals)
    return _b6_figure(ours, floor, count, rate)


def _b6_figure(ours: list[float], floor: list[float], count: int, rate: float) -> dict[str, Any]:
    p50, p99 = _percentile(ours, 50), _percentile(ours, 99)
    f50, f99 = _percentile(floor, 50), _percentile(floor, 99)
    met = (
        len(ours) == count
        and p50 <= B6_P50_MS
        and p99 <= B6_P99_MS
        and p50 <= B6_FLOOR_FACTOR * f50
    )
    return common.figure(
        p50,
        "ms (p50)",
        f50,
        f"p50 <= {B6_P50_MS} ms, p99 <= {B6_P99_MS} ms, p50 <= {B6_FLOOR_FACTOR}x floor",
        met,
        spread=[min(ours), max(ours)],
        p99=p99,
        baseline_p99=f99,
        baseline_spread=[min(floor), max(floor)],
        delivered=len(ours),
        published=count,
        rate=rate,
        note="Nova instance.update published on RabbitMQ (publisher process) -> "
        "notification worker process -> pipe -> dispatcher -> subscriber "
        "callback; baseline: bare oslo.messaging listener process; latency from just "
        "before the publish call",
    )


def _drain(start: Callable[[], Any], arrivals: _Arrivals, count: int) -> float:
    with start():
        if not arrivals.wait(count, max(120.0, count / 200.0)):
            raise RuntimeError(f"only {len(arrivals.at)}/{count} messages arrived")
    return arrivals.rate()


def _b7(bench: _Bench, count: int) -> dict[str, Any]:
    topic = bench.topic("throughput")
    confs = {
        setting: bench.conf_file([topic], bench.pool(f"sync-b7-{setting}"), options)
        for setting, options in B7_SETTINGS.items()
    }
    bare_pool = bench.pool("bare-b7")
    # Declare every pool's queue first, so each gets a copy of every message.
    for conf in confs.values():
        with _synchronizer(conf, _Arrivals()):
            pass
    _BareProcess(topic, bare_pool).close()
    keys = set(_publish(topic, count))
    bare = _BareProcess(topic, bare_pool)
    try:
        floor_arrivals = _Arrivals()
        floor_arrivals.at = bare.arrivals(count)
    finally:
        bare.close()
    floor = floor_arrivals.rate()
    rates, lost = {}, {}
    for setting, conf in confs.items():
        arrivals = _Arrivals()
        rates[setting] = _drain(lambda c=conf, a=arrivals: _synchronizer(c, a), arrivals, count)
        lost[setting] = len(keys - arrivals.at.keys())
    rate = rates[B7_HEADLINE]
    return common.figure(
        rate,
        "notifications/s",
        floor,
        f">= {B7_TARGET:.0f}/s, nothing lost",
        rate >= B7_TARGET and lost[B7_HEADLINE] == 0,
        rates=rates,
        lost=lost,
        queued=count,
        settings=B7_SETTINGS,
        note="queued Nova instance.update drained through the notification worker(s) to a "
        f"subscriber callback; value: the {B7_HEADLINE!r} settings, rates: every setting, "
        "each draining its own pool's copy; baseline: bare oslo.messaging listener "
        "draining its own copy of the same queue",
    )


def b6_b7(
    seconds: float, rate: float, queued: int, options: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """B6 and B7; ``options``: [DEFAULT] options for the synchronizer (to compare settings)."""
    if not available():
        note = "not run: no RabbitMQ broker on 127.0.0.1:5672"
        return {"B6": common.skipped(note), "B7": common.skipped(note)}
    with tempfile.TemporaryDirectory() as tmp:
        bench = _Bench(Path(tmp), options)
        try:
            return {"B6": _b6(bench, seconds, rate), "B7": _b7(bench, queued)}
        finally:
            bench.cleanup()
