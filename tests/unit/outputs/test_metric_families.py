"""The Prometheus families, read from what the workers reported (typed, so a rename fails here)."""

import pytest
from prometheus_client import CollectorRegistry, exposition

from synchronizer import Synchronizer, opts
from synchronizer.outputs.metrics import SynchronizerCollector
from synchronizer.wire import CycleEnd, EventCount, NotificationStats, Outcome, PluginState


@pytest.fixture
def sync():
    return Synchronizer(opts.parse([], setup_logging=False))


def scrape(sync: Synchronizer) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SynchronizerCollector(sync))
    text = exposition.generate_latest(registry).decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_a_cycle_end_moves_the_poll_families(sync):
    """A collector's reported cycle shows as cycles, changes per action, duration and baseline."""
    sync.status.cycle_done(
        "static", CycleEnd(True, True, True, listed=6, tracked=6, created=6, duration=0.25), 6
    )
    sync.status.cycle_done("static", CycleEnd(False, False, False, error="ReadTimeout: x"), 6)
    m = scrape(sync)
    assert m['synchronizer_poll_cycles_total{outcome="complete",plugin="static"}'] == 1
    assert m['synchronizer_poll_cycles_total{outcome="incomplete",plugin="static"}'] == 1
    assert m['synchronizer_poll_changes_total{action="create",plugin="static"}'] == 6
    assert m['synchronizer_poll_changes_total{action="delete",plugin="static"}'] == 0
    assert m['synchronizer_poll_cycle_seconds{plugin="static"}'] == 0.0
    assert m['synchronizer_poll_entities_tracked{plugin="static"}'] == 0
    assert m['synchronizer_plugin_failures_total{kind="ReadTimeout",plugin="static"}'] == 1


def test_plugin_states_count_as_failures_by_state(sync):
    """A plugin reported down is counted under its state's name."""
    sync.status.plugin_state("nagios", PluginState.UNAVAILABLE, "url is not set")
    m = scrape(sync)
    assert m['synchronizer_plugin_failures_total{kind="unavailable",plugin="nagios"}'] == 1


def test_notification_counters_have_one_total_suffix(sync):
    """Notification outcomes read as notifications_by_outcome_total, with no doubled suffix."""
    sync.status.notification_stats(
        "notifications",
        NotificationStats(5, 3, 1, 1, (EventCount("p", "e.update", Outcome.MAPPED, 3),)),
    )
    m = scrape(sync)
    by_outcome = {
        o: m[f'synchronizer_notifications_by_outcome_total{{outcome="{o}"}}'] for o in Outcome
    }
    assert by_outcome == {"received": 5, "mapped": 3, "ignored": 1, "dropped": 1}
    key = 'synchronizer_notifications_total{event_type="e.update",outcome="mapped",plugin="p"}'
    assert m[key] == 3
    assert not [name for name in m if "_total_by_outcome" in name]


def test_held_deletes_bad_records_and_hung_plugins_have_their_families(sync):
    """A hold, unconvertible records and a hung collector each show, per plugin."""
    end = CycleEnd(True, False, True, listed=5, tracked=20, held=15, unconvertible=2)
    sync.status.cycle_done("nova.instance", end, 20)
    sync.status.cycle_done("nova.instance", end, 20)
    sync.status.plugin_state("heat.stack", PluginState.HUNG, "a poll cycle has run for 31 s")
    m = scrape(sync)
    assert m['synchronizer_poll_deletes_held{plugin="nova.instance"}'] == 15
    assert m['synchronizer_poll_records_unconvertible{plugin="nova.instance"}'] == 2
    assert m['synchronizer_poll_records_skipped_total{plugin="nova.instance"}'] == 4
    assert m['synchronizer_plugin_hung{plugin="heat.stack"}'] == 1
    assert m['synchronizer_plugin_failures_total{kind="hung",plugin="heat.stack"}'] == 1
    assert m['synchronizer_dispatched_total{outcome="revived"}'] == 0
