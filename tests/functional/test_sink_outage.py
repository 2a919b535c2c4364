"""The message sink through broker outages: delayed, never lost; consumers end equal to the cloud.

A broker of the test's own (:class:`tests.helpers.broker.PrivateBroker`) is
stopped and started under churn; the real daemon publishes from its
store's history with a committed position; the consumer is the real
``client.watch`` (its gaps filled from the daemon's history).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from synchronizer.outputs import client
from tests.functional.test_restart import Setup, World, cloud
from tests.helpers.broker import PrivateBroker
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.broker

# The suite's default is two 10 s outages (the functional tier must stay
# well under ten minutes); the reproduction is ten 40 s ones:
# OUTAGE_ROUNDS=10 OUTAGE_SECONDS=40 pytest tests/functional/test_sink_outage.py
ROUNDS = int(os.environ.get("OUTAGE_ROUNDS", "2"))
DOWN = float(os.environ.get("OUTAGE_SECONDS", "10"))


@pytest.fixture
def broker(tmp_path, transport_url):
    """A RabbitMQ node of this test's own (``transport_url``: only to skip without a broker)."""
    try:
        node = PrivateBroker(tmp_path / "broker")
        node.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a private RabbitMQ node: {exc}")
    yield node
    node.stop()


class Churn(threading.Thread):
    """About 7 changes a second to a 2,000-entity cloud, until stopped."""

    def __init__(self, setup: Setup, truth: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.setup, self.truth = setup, truth
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.rng = random.Random(40)
        self.n = 0

    def run(self) -> None:
        while not self.stopping.wait(1 / 7):
            with self.lock:
                self.n += 1
                key = f"k{self.rng.randrange(2000):05d}"
                if self.rng.random() < 0.1:
                    self.truth.pop(key, None)
                else:
                    self.truth[key] = f"s{self.n}"
                self.setup.write(self.truth)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.truth)


@pytest.mark.timeout(120 + ROUNDS * (DOWN + 60))
def test_broker_outages_under_churn_lose_nothing(tmp_path, broker, unique):
    """The broker stopped for 40 s under churn, 10 times: the consumer is equal to the cloud."""
    setup = Setup(tmp_path, broker.url, unique)
    truth = cloud(2000)
    setup.write(truth)
    world = World()
    with Daemon(setup.conf) as d:
        d.wait_log("RPC view serving", timeout=60)
        handle = client.watch(setup.consumer_conf(), None, world, pool=f"consumer-{unique}")
        churn = Churn(setup, truth)
        try:
            assert world.synced.wait(30)
            churn.start()
            outcomes = []
            for _ in range(ROUNDS):
                time.sleep(5)
                broker.stop()
                time.sleep(DOWN)
                broker.start()
                time.sleep(5)  # churn goes on with the broker back
                with churn.lock:  # a quiet moment to compare
                    expected = dict(churn.truth)
                    equal = world.wait_equal(expected, 60)
                missing = set(expected) - set(world.view)
                phantom = set(world.view) - set(expected)
                stale = {k for k in expected if world.view.get(k, expected[k]) != expected[k]}
                outcomes.append((equal, len(missing), len(phantom), len(stale)))
                print(f"outage {len(outcomes)}: equal {outcomes[-1]}", flush=True)
        finally:
            churn.stopping.set()
            handle.stop()
    assert outcomes == [(True, 0, 0, 0)] * ROUNDS
    assert world.repeats() == []
    assert d.count_logs("takes changes again") >= ROUNDS


def test_a_broker_down_when_the_daemon_starts_delays_the_creates_and_loses_none(
    tmp_path, broker, unique
):
    """With the broker away at start, the 500 initial creates wait in the history, then go."""
    setup = Setup(tmp_path, broker.url, unique)
    truth = cloud(500)
    setup.write(truth)
    broker.stop()
    with Daemon(setup.conf) as d:
        d.wait_log("Ready", timeout=60)
        assert d.wait_until(lambda: len(setup.lines()) >= 500, 30)  # jsonl did not wait
        time.sleep(3)
        # The sink publishes as soon as the broker answers: held meanwhile, so
        # that the raw subscriber's queue exists before the first create goes
        # (one made after it would never see what was sent before).
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            broker.start()
            creates: list = []
            raw = client.subscribe(
                setup.consumer_conf(), None, creates.append, pool=f"other-{unique}"
            )
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        # An RPC call made before the view server's queue exists is lost on the
        # broker (the consumer would get DaemonUnreachable): wait for it.
        d.wait_log("RPC view serving", timeout=90)
        world = World()
        handle = client.watch(setup.consumer_conf(), None, world, pool=f"consumer-{unique}")
        try:
            deadline = time.monotonic() + 60
            while len(creates) < 500 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert world.wait_equal(truth, 30)
        finally:
            raw.stop()
            handle.stop()
    assert sorted(c.seq for c in creates) == list(range(1, 501))
    assert {c.action for c in creates} == {"create"}


def test_sigterm_with_the_broker_gone_after_a_normal_start_exits_within_10_s(
    tmp_path, broker, unique
):
    """Started with its broker, which then goes away while changes wait to be sent:
    SIGTERM still ends the daemon within 10 s, exit status 0."""
    setup = Setup(tmp_path, broker.url, unique)
    truth = cloud(50)
    setup.write(truth)
    d = Daemon(setup.conf).start()
    try:
        d.wait_log("RPC view serving", timeout=60)
        broker.stop()
        truth["k00001"] = "changed-with-the-broker-gone"
        setup.write(truth)
        time.sleep(3.0)  # the sink is retrying the send; the RPC server its connection
        started = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        code = d.proc.wait(30)
        took = time.monotonic() - started
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    print(f"SIGTERM with the broker gone: exit {code} after {took:.1f} s")
    assert code == 0, "\n".join(d.logs[-20:])
    assert took < 10.0
