"""The dispatcher: fan-out, isolation, snapshot→synced→live, resyncs, pruning."""

import threading
import time

from oslo_config import cfg

from synchronizer import fingerprint, opts, timeutil
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.store import FileStore
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Action, Change, Entity, Source, Synced

SRC = Source("poll", "c")
T1, T2 = "2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:02.000000Z"


def ch(key, state="s", type_="t", action=Action.UPDATE, ts=None):
    e = Entity(type_, key, state=state, timestamp=ts or timeutil.now(), source=SRC)
    return Change(action, e, fingerprint.of(e))


def subscribe(d, types=None, snapshot=True, callback=None):
    got = []
    sub = Subscription(types, callback or got.append)
    d.add(sub, snapshot=snapshot)
    sub.start()
    return sub, got


def test_fan_out_by_type():
    """Each subscriber receives only the types it asked for."""
    d = Dispatcher()
    s1, got1 = subscribe(d, {"a"}, snapshot=False)
    s2, got2 = subscribe(d, None, snapshot=False)
    d.dispatch([ch("1", type_="a"), ch("2", type_="b")])
    s1.wait_idle(2)
    s2.wait_idle(2)
    assert [c.key for c in got1] == ["1"]
    assert [c.key for c in got2] == ["1", "2"]


def test_failing_callback_is_isolated():
    """A raising callback is counted and the subscription goes on."""
    d = Dispatcher()
    seen = []

    def bad(item):
        seen.append(item)
        raise RuntimeError("consumer bug")

    sub, _ = subscribe(d, snapshot=False, callback=bad)
    d.dispatch([ch("1"), ch("2")])
    sub.wait_idle(2)
    assert sub.failures == 2
    assert len(seen) == 2


def test_slow_subscriber_blocks_nobody():
    """A stalled callback does not delay another subscriber's deliveries."""
    d = Dispatcher()
    release = threading.Event()
    slow, _ = subscribe(d, snapshot=False, callback=lambda item: release.wait(10))
    fast, got = subscribe(d, snapshot=False)
    t0 = time.monotonic()
    for i in range(100):
        d.dispatch([ch(str(i % 5), state=str(i))])
    assert fast.wait_idle(2)
    assert time.monotonic() - t0 < 2
    final = {c.key: c.entity.state for c in got}
    assert final == {str(k): str(95 + k) for k in range(5)}
    assert slow.backlog <= 5  # coalesced per key
    release.set()
    slow.close()


def test_snapshot_then_synced_then_live_without_gap_or_duplicate():
    """A subscriber added while changes flow sees every key's final state exactly once in order."""
    d = Dispatcher()
    d.dispatch([ch(f"k{i}", state="0") for i in range(200)])
    stop = threading.Event()
    counter = [0]

    def producer():
        while not stop.is_set():
            counter[0] += 1
            d.dispatch([ch(f"k{counter[0] % 200}", state=str(counter[0]))])

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.05)
    sub, got = subscribe(d, snapshot=True)
    time.sleep(0.1)
    stop.set()
    thread.join()
    assert sub.wait_idle(5)
    markers = [i for i, item in enumerate(got) if isinstance(item, Synced)]
    assert len(markers) == 1
    snap = got[: markers[0]]
    assert {c.key for c in snap} == {f"k{i}" for i in range(200)}
    assert all(c.action is Action.SNAPSHOT for c in snap)
    view = {c.key: c for c in snap}
    last_seq = {c.key: c.seq for c in snap}
    for c in got[markers[0] + 1 :]:
        assert c.seq > last_seq[c.key]  # no duplicate, no reordering per key
        last_seq[c.key] = c.seq
        view[c.key] = c
    truth = {e.key: e.state for e in d.get_all()}
    assert {k: c.entity.state for k, c in view.items()} == truth


def test_resync_deletes_what_it_no_longer_lists():
    """A completed resync deletes the plugin's entities it did not list, as final state unknown."""
    d = Dispatcher()
    d.dispatch([ch("a", ts="2026-01-01T00:00:00Z"), ch("b", ts="2026-01-01T00:00:00Z")])
    sub, _got = subscribe(d, snapshot=False)
    d.begin_resync("c", ["t"], "2026-01-01T00:01:00Z")
    d.dispatch([ch("a", ts="2026-01-01T00:01:00Z")])
    told = d.end_resync("c", complete=True)
    sub.wait_idle(2)
    assert [(c.key, c.action, c.final_state_unknown) for c in told] == [("b", Action.DELETE, True)]
    assert told[0].entity.state == "s"
    assert {e.key for e in d.get_all()} == {"a"}


def test_incomplete_resync_deletes_nothing():
    """A resync that did not complete deletes nothing."""
    d = Dispatcher()
    d.dispatch([ch("a", ts="2026-01-01T00:00:00Z")])
    d.begin_resync("c", ["t"], "2026-01-01T00:01:00Z")
    assert d.end_resync("c", complete=False) == []
    assert {e.key for e in d.get_all()} == {"a"}


def test_resync_keeps_entities_seen_after_it_began():
    """An entity pushed after the resync began is not deleted by it."""
    d = Dispatcher()
    d.begin_resync("c", ["t"], "2026-01-01T00:01:00Z")
    pushed = Entity(
        "t", "late", state="s", timestamp="2026-01-01T00:01:30Z", source=Source("push", "n")
    )
    d.dispatch([Change(Action.CREATE, pushed, fingerprint.of(pushed))])
    assert d.end_resync("c", complete=True) == []
    assert {e.key for e in d.get_all()} == {"late"}


def churn(d, pairs, chunk=500):
    """Create and delete ``pairs`` distinct entities, in chunks as workers send them."""
    for start in range(0, pairs, chunk):
        keys = [f"k{i}" for i in range(start, start + chunk)]
        d.dispatch(
            [Change(Action.CREATE, Entity("t", k, "s", timestamp=T1, source=SRC), 1) for k in keys]
        )
        d.dispatch([Change(Action.DELETE, Entity("t", k, "s", timestamp=T2)) for k in keys])
        yield len(d.ledger.store), d.tombstone_count()


def test_create_delete_churn_leaves_the_ledger_bounded():
    """Over 100,000 create/delete pairs the ledger's entries and tombstones stay at the bound."""
    d = Dispatcher(tombstone_max=1000)
    sizes = list(churn(d, 100_000))
    assert max(entries for entries, _ in sizes) <= 1000
    assert sizes[-1] == (1000, 1000)
    assert d.entity_count() == 0
    assert d.counters()["delete"] == 100_000


def test_expired_tombstones_are_pruned_by_the_dispatch_path():
    """A tombstone past its TTL is gone after the next dispatch, with nobody calling prune."""
    clock = [0.0]
    d = Dispatcher(tombstone_ttl=10.0, clock=lambda: clock[0])
    list(churn(d, 3, chunk=3))
    assert (len(d.ledger.store), d.tombstone_count()) == (3, 3)
    clock[0] = 5.0
    d.dispatch([])
    assert d.tombstone_count() == 3
    clock[0] = 11.0
    d.dispatch([])
    assert (len(d.ledger.store), d.tombstone_count()) == (0, 0)


def test_counters_and_entity_count_read_what_was_dispatched():
    """counters() counts received, dropped and told by action; entity_count() the live view."""
    d = Dispatcher()
    d.dispatch([ch("a", ts="2026-01-01T00:00:01Z"), ch("b", ts="2026-01-01T00:00:01Z")])
    d.dispatch([ch("a", ts="2026-01-01T00:00:02Z")])
    counters = d.counters()
    assert counters == {"received": 3, "create": 2, "dropped": 1, "revived": 0}
    counters["received"] = 0
    assert d.counters()["received"] == 3
    assert d.entity_count() == 2


def test_a_false_inferred_delete_heals_with_the_next_listing():
    """A listing that lost a record deletes it; the next one that lists it brings it back."""
    d = Dispatcher()
    sub, got = subscribe(d, snapshot=False)
    gone = Change(Action.DELETE, Entity("t", "a", timestamp=T2), inferred=True)
    for batch in ([ch("a", ts=T1)], [gone], [ch("a", ts="2026-01-01T00:00:03Z")]):
        d.dispatch(batch)
        sub.wait_idle(2)  # one at a time: a lagging subscriber would coalesce them
    assert [(c.action, c.key) for c in got] == [
        (Action.CREATE, "a"),
        (Action.DELETE, "a"),
        (Action.CREATE, "a"),
    ]
    assert [e.key for e in d.get_all()] == ["a"]
    assert d.counters()["revived"] == 1


def test_the_ledger_file_option_puts_the_entries_in_that_file(tmp_path):
    """from_conf keeps the ledger in the configured file and applies the tombstone options."""
    conf = cfg.ConfigOpts()
    conf.register_opts(opts.CORE_OPTS)
    conf([])
    conf.set_override("ledger_file", str(tmp_path / "ledger.db"))
    conf.set_override("tombstone_max", 7)
    d = Dispatcher.from_conf(conf)
    d.dispatch([ch("a")])
    assert isinstance(d.ledger.store, FileStore)
    assert (tmp_path / "ledger.db").stat().st_size > 0
    assert d.ledger.tombstone_max == 7
