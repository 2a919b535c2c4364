"""The ledger's delivery rules, in memory and in a ledger file alike."""

import datetime
import itertools
import random
import sys

import pytest

from synchronizer import fingerprint
from synchronizer.dispatch import ledger as ledger_module
from synchronizer.dispatch.store import FileStore
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source

Ledger = ledger_module.Ledger


@pytest.fixture(autouse=True, params=["memory", "file"])
def store(request, tmp_path, monkeypatch):
    """Every test runs twice: entries in the heap, then in a SQLite ledger file."""
    if request.param == "file":
        files = (str(tmp_path / f"ledger-{i}.db") for i in itertools.count())

        def in_a_file(*args, **kwargs):
            return ledger_module.Ledger(*args, store=FileStore(next(files)), **kwargs)

        monkeypatch.setattr(sys.modules[__name__], "Ledger", in_a_file)
    return request.param


POLL = Source("poll", "c")
PUSH = Source("push", "n")


def ch(action, key="k", state="ACTIVE", ts="2026-01-01T00:00:01Z", source=POLL):
    e = Entity("t", key, state=state, timestamp=ts, source=source)
    fp = 0 if action is Action.DELETE else fingerprint.of(e)
    return Change(action, e, fp)


def test_repeat_is_dropped():
    """A change repeating what was told (same fingerprint) is dropped."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.CREATE)) is not None
    assert ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:02Z", source=PUSH)) is None


def test_older_state_is_dropped():
    """A state older than the newest delivered for the key is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:05Z"))
    assert ledger.admit(ch(Action.UPDATE, state="ERROR", ts="2026-01-01T00:00:04Z")) is None
    assert ledger.get("t", "k").entity.state == "ACTIVE"


def test_confirming_poll_advances_the_clock():
    """After a poll confirms a state at t2, a delayed push from t1 < t2 is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:01Z", source=PUSH))
    ledger.admit(ch(Action.UPDATE, ts="2026-01-01T00:00:03Z", source=POLL))
    late = ch(Action.UPDATE, state="SHUTOFF", ts="2026-01-01T00:00:02Z", source=PUSH)
    assert ledger.admit(late) is None


@pytest.mark.parametrize(
    ("first", "second", "told"),
    [
        (Action.CREATE, Action.CREATE, Action.UPDATE),
        (Action.UPDATE, Action.UPDATE, Action.UPDATE),
        (None, Action.UPDATE, Action.CREATE),
    ],
)
def test_action_is_rewritten_to_what_subscribers_know(first, second, told):
    """Subscribers get create for a key they never saw, update otherwise."""
    ledger = Ledger()
    if first:
        ledger.admit(ch(first))
    out = ledger.admit(ch(second, state="OTHER", ts="2026-01-01T00:00:09Z"))
    assert out.action is told


def test_delete_carries_last_known_state():
    """A delete without state is delivered with the last known entity."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, state="ACTIVE"))
    bare = Change(Action.DELETE, Entity("t", "k", timestamp="2026-01-01T00:00:09Z"))
    out = ledger.admit(bare)
    assert out.action is Action.DELETE
    assert out.entity.state == "ACTIVE"
    assert len(ledger) == 0


def test_delete_of_unknown_or_deleted_is_dropped():
    """Deleting what was never told, or told deleted, tells nothing."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.DELETE, key="never-told")) is None
    ledger.admit(ch(Action.CREATE))
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z")) is not None
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:06Z")) is None


def test_stale_poll_cannot_resurrect_a_deleted_entity():
    """After a push delete, a poll still listing the entity is dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:02Z", source=PUSH))
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:03Z", source=POLL)) is None
    again = ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:04Z", source=PUSH))
    assert again is not None
    assert again.action is Action.CREATE


def inferred_delete(key="k", ts="2026-01-01T00:00:02Z"):
    """A delete as a complete listing infers it: type, key and time, marked inferred."""
    return Change(Action.DELETE, Entity("t", key, timestamp=ts), inferred=True)


def test_a_key_listed_again_after_an_inferred_delete_comes_back(caplog):
    """A delete inferred from absence does not block the key when a later listing has it."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    assert ledger.admit(inferred_delete()) is not None
    back = ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:03Z", source=POLL))
    assert back is not None
    assert back.action is Action.CREATE
    assert ledger.get("t", "k").entity.state == "ACTIVE"
    assert len(ledger) == 1
    assert ledger.tombstone_count() == 0
    with caplog.at_level("WARNING"):
        ledger.commit()
    assert ledger.revived == 1
    assert "1 entities listed again after deletes inferred from their absence" in caplog.text
    assert "t k" in caplog.text


def test_a_reported_delete_after_an_inferred_one_blocks_again():
    """A delete notification confirming an inferred delete makes its tombstone block polls."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    ledger.admit(inferred_delete(ts="2026-01-01T00:00:02Z"))
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:03Z", source=PUSH)) is None
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:04Z", source=POLL)) is None
    ledger.commit()
    assert ledger.revived == 0


def test_an_inferred_delete_does_not_lift_a_reported_tombstone():
    """A listing inferring a delete the service already reported leaves the tombstone blocking."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:02Z", source=PUSH))
    assert ledger.admit(inferred_delete(ts="2026-01-01T00:00:03Z")) is None
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:04Z", source=POLL)) is None


def test_an_inferred_delete_still_drops_states_older_than_it():
    """Only a later listing overrules an inferred delete: an older state stays dropped."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    ledger.admit(inferred_delete(ts="2026-01-01T00:00:05Z"))
    late = ch(Action.UPDATE, state="SHUTOFF", ts="2026-01-01T00:00:04Z", source=PUSH)
    assert ledger.admit(late) is None
    assert len(ledger) == 0


def test_a_swept_delete_is_inferred_too():
    """A resync's final-state-unknown delete does not block the key's return either."""
    ledger = Ledger()
    ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z"))
    swept = Change(
        Action.DELETE,
        Entity("t", "k", state="ACTIVE", timestamp="2026-01-01T00:00:02Z", source=POLL),
        final_state_unknown=True,
        inferred=True,
    )
    assert ledger.admit(swept).final_state_unknown
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:03Z")) is not None


def test_tombstones_expire():
    """Tombstones are pruned after their TTL, freeing memory."""
    ledger = Ledger(tombstone_ttl=0.0)
    ledger.admit(ch(Action.CREATE))
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z"))
    assert ledger.prune() == 1
    assert ledger.get("t", "k") is None


def test_sequence_numbers_are_stamped():
    """Delivered changes carry the sequence number they were admitted with."""
    ledger = Ledger()
    assert ledger.admit(ch(Action.CREATE), seq=7).seq == 7


def rich(key="k", ts="2026-01-01T00:00:01Z", **props):
    e = Entity(
        "nova.instance",
        key,
        state="ACTIVE",
        project="p1",
        parent=Ref("nova.host", "h1"),
        relations=(Relation("attached", "cinder.volume", "v1"), Relation("port", "n.p", "x")),
        properties={"name": key, "nested": {"a": [1, 2.5, None]}, "pair": (1, 2), **props},
        timestamp=ts,
        source=POLL,
    )
    return Change(Action.CREATE, e, fingerprint.of(e))


def test_the_view_gives_back_every_entity_as_it_was_told():
    """What the ledger returns equals what it was given, field for field."""
    ledger = Ledger()
    told = [ledger.admit(rich(f"k{i}"), seq=i + 1) for i in range(20)]
    assert ledger.current() == told
    assert ledger.entities(["nova.instance"]) == [c.entity for c in told]
    assert ledger.current(["other.type"]) == []
    assert ledger.get("nova.instance", "k3") == told[3]


@pytest.mark.parametrize("varied", [False, True], ids=["uniform", "varied"])
def test_entries_stored_before_and_after_the_dictionary_is_trained_read_back(varied):
    """The first entries (first-entity dictionary) and later ones (trained) decode alike.

    The trained dictionary is taken only where it compresses better: for
    contents that vary as a cloud's do, never for near-identical ones.
    """
    rng = random.Random(1)
    words = ["web", "db", "cache", "batch", "api", "queue", "etl", "ci"]

    def props(i):
        if not varied:
            return {"host": f"h{i % 7}"}
        return {
            "host": f"compute-{rng.randrange(300):03d}",
            "image": f"{rng.getrandbits(128):032x}",
            "flavor": rng.choice(["m1.small", "m1.large", "c1.xlarge"]),
            "display": f"{rng.choice(words)}-{rng.choice(words)}-{rng.randrange(10_000)}",
            "created_at": f"2026-0{rng.randrange(1, 10)}-1{rng.randrange(10)}T10:00:00Z",
        }

    ledger = Ledger()
    told = [ledger.admit(rich(f"server-{i:05d}", **props(i)), seq=i + 1) for i in range(3000)]
    assert ledger.current() == told
    entries = ledger._entries["nova.instance"]
    early = sum(len(entries[f"server-{i:05d}"]) for i in range(100, 200))
    late = sum(len(entries[f"server-{i:05d}"]) for i in range(2900, 3000))
    if varied:
        assert late < early * 0.9, (early, late)
    else:
        assert late <= early * 1.05, (early, late)


def test_values_marshal_cannot_keep_are_kept_as_objects():
    """An entity holding an object of some class (a datetime) still round-trips whole."""
    ledger = Ledger()
    odd = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    told = ledger.admit(rich("o", thing=odd))
    assert ledger.get("nova.instance", "o").entity.properties["thing"] is odd
    assert ledger.current() == [told]
    gone = ledger.admit(Change(Action.DELETE, Entity("nova.instance", "o", timestamp="2026-01-02")))
    assert gone.entity.properties["thing"] is odd
    assert ledger.current() == []


def test_snapshot_action_is_stamped_on_the_view():
    """current(action=snapshot) gives the same entities and seqs, as snapshot items."""
    ledger = Ledger()
    told = ledger.admit(rich(), seq=5)
    (item,) = ledger.current(action=Action.SNAPSHOT)
    assert (item.action, item.entity, item.seq, item.fingerprint) == (
        Action.SNAPSHOT,
        told.entity,
        5,
        told.fingerprint,
    )


def test_confirmed_time_survives_in_the_compact_form():
    """A repeat's later observation time is what the view and the stale-state rule use."""
    ledger = Ledger()
    ledger.admit(rich(ts="2026-01-01T00:00:01Z"))
    assert ledger.admit(rich(ts="2026-01-01T00:00:09Z")) is None
    assert ledger.get("nova.instance", "k").entity.timestamp == "2026-01-01T00:00:09.000000Z"
    older = rich(ts="2026-01-01T00:00:05Z", name="changed")
    assert ledger.admit(older) is None


def test_tombstone_keeps_the_delete_time_and_seq():
    """A deleted key reads back as a delete at its time; the view leaves it out."""
    ledger = Ledger()
    ledger.admit(rich())
    ledger.admit(Change(Action.DELETE, Entity("nova.instance", "k", timestamp="2026-01-03")), seq=9)
    stone = ledger.get("nova.instance", "k")
    assert (stone.action, stone.seq, stone.entity.timestamp) == (
        Action.DELETE,
        9,
        "2026-01-03T00:00:00.000000Z",
    )
    assert ledger.current() == []
    assert len(ledger) == 0


@pytest.mark.parametrize("fp", [-5, 2**70])
def test_a_fingerprint_out_of_the_header_range_is_still_kept(fp):
    """A plugin-supplied fingerprint that fits no 64-bit header still filters and reads back."""
    ledger = Ledger()
    e = rich().entity
    told = ledger.admit(Change(Action.CREATE, e, fp))
    assert ledger.current() == [told]
    assert ledger.admit(Change(Action.UPDATE, e.replace(timestamp="2026-01-02"), fp)) is None
    gone = ledger.admit(Change(Action.DELETE, Entity("nova.instance", "k", timestamp="2026-01-03")))
    assert gone.entity.properties == e.properties


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def create_and_delete(ledger, key, ts="2026-01-01T00:00:01Z"):
    ledger.admit(ch(Action.CREATE, key=key, ts=ts))
    ledger.admit(ch(Action.DELETE, key=key, ts="2026-01-01T00:00:05Z"))


def test_past_tombstone_max_the_oldest_tombstone_goes_at_once():
    """The bound keeps the newest deletes: the oldest key is forgotten, the others still guard."""
    ledger = Ledger(tombstone_max=2)
    for key in ("a", "b", "c"):
        create_and_delete(ledger, key)
    assert ledger.tombstone_count() == 2
    assert ledger.get("t", "a") is None
    assert ledger.get("t", "b").action is Action.DELETE
    assert len(ledger.store) == 2
    stale = ch(Action.CREATE, key="c", ts="2026-01-01T00:00:09Z", source=POLL)
    assert ledger.admit(stale) is None


def test_prune_takes_the_expired_oldest_first_and_at_most_limit():
    """Only tombstones past the TTL go, oldest first, ``limit`` at a time."""
    clock = Clock()
    ledger = Ledger(tombstone_ttl=10.0, clock=clock)
    for i in range(5):
        create_and_delete(ledger, f"k{i}")
        clock.now += 1.0
    clock.now = 111.5  # k0 and k1 (deleted at 100 and 101) are older than the TTL
    assert ledger.prune(limit=1) == 1
    assert ledger.get("t", "k0") is None
    assert ledger.get("t", "k1") is not None
    assert ledger.prune() == 1
    assert ledger.prune() == 0
    assert [ledger.get("t", f"k{i}") is None for i in range(5)] == [True, True, False, False, False]
    assert ledger.tombstone_count() == 3


def test_an_expired_tombstone_no_longer_stops_a_polled_create():
    """After the TTL a poll may bring the key back, pruned or not."""
    clock = Clock()
    ledger = Ledger(tombstone_ttl=10.0, clock=clock)
    create_and_delete(ledger, "k")
    clock.now += 11.0
    again = ledger.admit(ch(Action.CREATE, key="k", ts="2026-01-01T00:00:09Z", source=POLL))
    assert again is not None
    assert again.action is Action.CREATE
    assert ledger.tombstone_count() == 0


def test_a_delete_that_overtakes_its_create_leaves_a_tombstone_the_create_cannot_pass():
    """Notifications converted out of order (several executor threads, several workers).

    The delete of a key not told yet tells nothing, but it is remembered:
    the create it overtook, older than it, is dropped instead of making a
    phantom that no later notification would ever remove, and so is a
    poll still listing the key.  A newer push comes in as usual.
    """
    ledger = Ledger()
    assert ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z", source=PUSH)) is None
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z", source=PUSH)) is None
    assert len(ledger) == 0
    assert ledger.current() == []
    assert ledger.tombstone_count() == 1
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:06Z", source=POLL)) is None
    again = ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:07Z", source=PUSH))
    assert again is not None
    assert again.action is Action.CREATE
    assert len(ledger) == 1


def test_a_tombstone_of_a_key_never_told_expires_like_any_other():
    """The overtaking delete's tombstone is bounded by the TTL: afterwards the key is unknown."""
    ledger = Ledger(tombstone_ttl=0.0)
    ledger.admit(ch(Action.DELETE, ts="2026-01-01T00:00:05Z", source=PUSH))
    assert ledger.prune() == 1
    assert ledger.get("t", "k") is None
    assert ledger.tombstone_count() == 0
    assert len(ledger) == 0


def test_an_inferred_delete_of_a_key_never_told_leaves_nothing():
    """Absence from a listing says nothing of a key never told: no tombstone for it."""
    ledger = Ledger()
    assert ledger.admit(inferred_delete()) is None
    assert ledger.tombstone_count() == 0
    assert ledger.admit(ch(Action.CREATE, ts="2026-01-01T00:00:01Z")) is not None
