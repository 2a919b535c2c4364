"""The collector's watchdog on a real poll loop: hung cycles end the worker, stops are prompt."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest
from oslo_config import cfg

from synchronizer import opts, plugin_loader, wire
from synchronizer.errors import PermanentError
from synchronizer.workers import watchdog
from synchronizer.workers.collector import PollLoop

NAME = "tests.helpers.plugins:FileCollector"


@pytest.fixture
def loop(tmp_path):
    """A poll loop on the file collector; the file says "HANG" (a cycle that never ends)."""
    path = tmp_path / "things.json"
    path.write_text(json.dumps("HANG"))
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugin_loader.resolve(conf, NAME)
    conf.set_override("path", str(path), group="filecollector")
    plugin = plugin_loader.instantiate(conf, NAME)
    sent: list[wire.Message] = []
    return PollLoop(plugin, "files", sent.append, chunk_size=10), sent


def test_a_cycle_past_its_bound_is_declared_hung_and_the_worker_exits(loop):
    """The main thread reports HUNG with the reason and exits EXIT_HUNG once the bound passes."""
    pl, sent = loop
    exits: list[int] = []
    t0 = time.monotonic()
    watchdog.Watchdog(pl, 1.0, exit=exits.append).run(threading.Event())
    elapsed = time.monotonic() - t0
    assert exits == [watchdog.EXIT_HUNG]
    assert 1.0 < elapsed < 1.0 + 2 * watchdog.TICK + 0.5
    (status,) = [m for m in sent if isinstance(m, wire.PluginStatus)]
    assert (status.plugin, status.state) == ("files", wire.PluginState.HUNG)
    assert "over its bound of 1 s" in status.reason


def test_a_stop_ends_the_worker_promptly_while_a_cycle_is_blocked(loop):
    """SIGTERM's stop event ends the worker within the grace even though the cycle never returns."""
    pl, sent = loop
    exits: list[int] = []
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    watchdog.Watchdog(pl, 3600.0, exit=exits.append).run(stop)
    assert time.monotonic() - t0 < 0.3 + watchdog.TICK + watchdog.STOP_GRACE + 0.5
    assert exits == [0]
    assert not [m for m in sent if isinstance(m, wire.PluginStatus)]


def test_a_loop_that_ends_normally_returns_and_a_permanent_error_is_raised():
    """A stopped loop returns without exiting the process; a PermanentError reaches the caller."""
    exits: list[int] = []

    class Stopped:
        name, send, cycle_started = "x", staticmethod(lambda m: None), None

        def run(self, stop):
            return None

    class Broken(Stopped):
        def run(self, stop):
            raise PermanentError("bad credentials")

    watchdog.Watchdog(Stopped(), 1.0, exit=exits.append).run(threading.Event())
    with pytest.raises(PermanentError, match="bad credentials"):
        watchdog.Watchdog(Broken(), 1.0, exit=exits.append).run(threading.Event())
    assert exits == []


@pytest.mark.parametrize(
    ("period", "cycle_timeout", "bound"),
    [(60.0, 0.0, 600.0), (1.0, 0.0, 300.0), (1.0, 12.0, 12.0), (600.0, 0.0, 6000.0)],
)
def test_the_bound_is_ten_periods_and_at_least_300_s_unless_set(period, cycle_timeout, bound):
    """cycle_timeout sets the bound; 0 means ten periods, never under 300 s."""
    options = SimpleNamespace(period=period, cycle_timeout=cycle_timeout)
    assert watchdog.cycle_bound(options) == bound
