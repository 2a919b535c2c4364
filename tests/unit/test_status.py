"""What the status reports: plugin states, cycles, notification counters, readiness."""

import time

import pytest

from synchronizer.service.status import Status
from synchronizer.wire import CycleEnd, EventCount, NotificationStats, Outcome, PluginState


def stats(received: int, mapped: int = 0, dropped: int = 0, **events: int) -> NotificationStats:
    by_event = tuple(EventCount("p", e, Outcome.MAPPED, n) for e, n in events.items())
    return NotificationStats(received=received, mapped=mapped, dropped=dropped, by_event=by_event)


def test_notification_counters_of_every_worker_are_summed():
    """Each worker's last report counts once; a newer report replaces its older one."""
    status = Status()
    status.notification_stats("notifications-1", stats(5, mapped=4, e=4))
    status.notification_stats("notifications-2", stats(3, dropped=1, e=2))
    status.notification_stats("notifications-1", stats(7, mapped=6, e=6))
    merged = status.notifications_snapshot()
    assert merged.by_outcome() == {
        Outcome.RECEIVED: 10,
        Outcome.MAPPED: 6,
        Outcome.IGNORED: 0,
        Outcome.DROPPED: 1,
    }
    assert merged.by_event == (EventCount("p", "e", Outcome.MAPPED, 8),)


def test_no_worker_reported_yet():
    """Before any notification worker reports, every counter is zero."""
    assert Status().notifications_snapshot() == NotificationStats()


@pytest.mark.parametrize(
    ("state", "ready"),
    [
        (PluginState.RUNNING, False),
        (PluginState.FAILED, True),
        (PluginState.UNAVAILABLE, True),
        (PluginState.DISABLED, True),
    ],
)
def test_a_collector_that_cannot_run_does_not_hold_readiness_back(state, ready):
    """Readiness waits for a running collector's first snapshot, not for one that is down."""
    status = Status()
    status.expect(["a", "b"])
    status.plugin_state("a", PluginState.RUNNING)
    status.cycle_done("a", CycleEnd(complete=True, resync=True, full=True), 1)
    status.plugin_state("b", state, "" if state is PluginState.RUNNING else "why")
    assert status.ready.is_set() is ready
    assert ("not running: b" in status.text()) is ready


def test_cycle_outcomes_are_counted_per_plugin_action_and_failure_kind():
    """Complete and incomplete cycles, their changes and failure kinds add up per plugin."""
    status = Status()
    status.cycle_done("a", CycleEnd(True, True, True, created=3, updated=1), 4)
    status.cycle_done("a", CycleEnd(False, False, True, error="ConnectionError: refused"), 4)
    status.cycle_done("a", CycleEnd(True, False, False, deleted=2), 2)
    assert status.cycles_snapshot() == {("a", "complete"): 2, ("a", "incomplete"): 1}
    assert status.changes_snapshot() == {
        ("a", "create"): 3,
        ("a", "update"): 1,
        ("a", "delete"): 2,
    }
    assert status.failures_snapshot() == {("a", "ConnectionError"): 1}
    assert status.last_cycles()["a"].deleted == 2


def test_health_reports_a_plugin_not_heard_from_as_starting():
    """A collector that has not reported yet is starting, not failed."""
    status = Status()
    status.expect(["a"], {"a": 60.0})
    report = status.health()
    assert report["plugins"]["a"]["state"] == PluginState.STARTING
    assert report["healthy"] is True
    status.plugin_state("a", PluginState.DISABLED, "bad credentials")
    assert status.health()["healthy"] is False


def test_readiness_does_not_wait_for_a_hung_collector_and_status_says_so():
    """A collector declared hung lets READY through, shows in STATUS and healthz, until it lists."""
    status = Status()
    status.expect(["a", "b"], {"a": 1.0, "b": 1.0})
    status.plugin_state("a", PluginState.RUNNING)
    status.cycle_done("a", CycleEnd(complete=True, resync=True, full=True), 1)
    status.plugin_state("b", PluginState.RUNNING)
    assert not status.ready.is_set()
    status.plugin_state("b", PluginState.HUNG, "a poll cycle has run for 31 s")
    assert status.ready.is_set()
    status.plugin_state("b", PluginState.RUNNING)  # the restarted worker: still hung
    assert "hung (restarting): b" in status.text()
    health = status.health()
    assert not health["healthy"]
    assert health["plugins"]["b"]["state"] == PluginState.HUNG
    assert health["plugins"]["b"]["hung"] == "a poll cycle has run for 31 s"
    assert status.failures_snapshot()[("b", "hung")] == 1
    status.cycle_done("b", CycleEnd(complete=True, resync=True, full=True), 2)
    assert "hung" not in status.text()
    assert status.health()["plugins"]["b"]["hung"] is None


def test_held_deletes_and_unconvertible_records_are_shown():
    """Deletes held as a mass delete and records that did not convert show in STATUS and healthz."""
    status = Status()
    status.expect(["a"], {"a": 1.0})
    end = CycleEnd(complete=True, resync=False, full=True, held=1495, unconvertible=2)
    status.cycle_done("a", end, 2500)
    status.cycle_done("a", end, 2500)
    assert "holding deletes: a (1495)" in status.text()
    plugin = status.health()["plugins"]["a"]
    assert (plugin["held_deletes"], plugin["unconvertible_records"]) == (1495, 2)
    assert plugin["healthy"]  # the next listing decides: not a failure
    assert status.unconvertible_snapshot() == {"a": 4}


def test_a_listing_longer_than_its_period_is_not_stale_while_the_next_one_runs():
    """Freshness allows three times the longer of the period and the last cycle's duration."""
    status = Status()
    status.expect(["slow", "fast"], {"slow": 0.01, "fast": 0.01})
    status.cycle_done("slow", CycleEnd(complete=True, resync=True, full=True, duration=5.0), 1)
    status.cycle_done("fast", CycleEnd(complete=True, resync=True, full=True, duration=0.001), 1)
    time.sleep(0.1)  # ten periods: the fast one is stale, the slow one is within 3 x 5 s
    plugins = status.health()["plugins"]
    assert plugins["slow"]["healthy"]
    assert not plugins["fast"]["healthy"]


def test_a_status_nobody_reads_does_not_block_the_daemon(tmp_path, monkeypatch):
    """STATUS= to a notify socket whose queue is full is dropped, not waited on.

    A datagram socket holds ten unread messages here (net.unix.max_dgram_qlen);
    the eleventh send blocked the status thread until someone read.
    """
    import socket
    import threading

    from synchronizer.service.daemon import sd_status

    path = tmp_path / "notify"
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    sender = threading.Thread(target=lambda: [sd_status(f"n{i}") for i in range(50)], daemon=True)
    try:
        sender.start()
        sender.join(10)
        assert not sender.is_alive(), "sd_status blocked on a full notify socket"
        reader.settimeout(1.0)
        assert reader.recv(100) == b"STATUS=n0"  # what the queue held is intact
    finally:
        reader.close()
