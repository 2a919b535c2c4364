"""A partition owner frozen inside its write transaction does not hold the failover back.

A member paused (SIGSTOP, a VM frozen, a host cut off with its TCP
connection half open) in the middle of a commit keeps the partition's row
locked: to the database it is a client idle in its transaction.  The next
owner's claim must still get through within about the lease, and must not
wait on the row for longer than one ownership period at a time (the
ownership thread heart-beats between tries).  The owner is a real process
on real PostgreSQL and MariaDB, frozen with SIGSTOP while it holds the row.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from synchronizer import fingerprint, timeutil
from synchronizer.dispatch import sql
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.errors import Fenced
from synchronizer.model import Action, Change, Entity
from tests.helpers import fleetparts

LEASE = 3.0  # the fleet's heartbeat_timeout in these tests
FREEZE_TRIES = 500

# The old owner: claims the partition, then commits small batches until its
# writes are refused (exit 3) or its connection is ended (exit 4).
OWNER = """
import sys
from synchronizer import fingerprint, timeutil
from synchronizer.dispatch import sql
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.errors import Fenced
from synchronizer.model import Action, Change, Entity, Source

engine = sql.create_engine(sys.argv[1], create_tables=False, lease=float(sys.argv[2]))
store = sql.SQLStore(engine, "nova", "m1")
store.claim()
dispatcher = Dispatcher(store=store)
print("claimed", flush=True)
src = Source("poll", "nova.instance")
n = 0
while True:
    n += 1
    e = Entity("nova.instance", f"u{n % 50}", state=f"S{n}", timestamp=timeutil.now(), source=src)
    try:
        dispatcher.dispatch([Change(Action.UPDATE, e, fingerprint.of(e))])
    except Fenced as exc:
        print("fenced", exc, flush=True)
        sys.exit(3)
    except sql.DATABASE_ERRORS as exc:
        print("database error", type(exc).__name__, flush=True)
        sys.exit(4)
"""


@pytest.fixture(params=["postgresql", "mysql"])
def url(request):
    url = fleetparts.create_database(request.param)
    engine = sql.create_engine(url)  # the tables
    engine.dispose()
    yield url
    fleetparts.drop_database(url)


def row_is_locked(engine: sa.engine.Engine) -> bool:
    """Whether another transaction holds the nova partition's row (tried without waiting)."""
    query = (
        sa.select(sql.partitions.c.term)
        .where(sql.partitions.c.name == "nova")
        .with_for_update(nowait=True)
    )
    try:
        with engine.begin() as conn:
            conn.execute(query)
        return False
    except sql.DATABASE_ERRORS:
        return True


def freeze_inside_a_transaction(proc: subprocess.Popen, probe: sa.engine.Engine) -> int:
    """SIGSTOP the owner until it is stopped holding the row; how many tries it took."""
    for attempt in range(1, FREEZE_TRIES + 1):
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.05)  # stopped for sure, and a statement it had sent is done
        if row_is_locked(probe):
            return attempt
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(random.uniform(0.0, 0.01))
    pytest.fail(f"the owner was never stopped inside a transaction in {FREEZE_TRIES} tries")


def test_a_claim_gets_through_an_owner_frozen_inside_its_commit(url):
    """The frozen owner's transaction ends within the lease; the claim never waits a period."""
    probe = sa.create_engine(url)
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, url, str(LEASE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    engine = sql.create_engine(url, create_tables=False, lease=LEASE)
    claimed = threading.Event()
    waits: list[float] = []
    try:
        assert proc.stdout.readline().strip() == "claimed"
        time.sleep(0.5)  # committing
        freeze_inside_a_transaction(proc, probe)
        frozen = time.monotonic()

        def claim() -> None:
            # As the member's ownership loop does: try, and try again the next period.
            store = sql.SQLStore(engine, "nova", "m2")
            while time.monotonic() - frozen < 60:
                t0 = time.monotonic()
                try:
                    store.claim()
                    claimed.set()
                    return
                except sql.DATABASE_ERRORS:
                    pass
                finally:
                    waits.append(time.monotonic() - t0)
                time.sleep(LEASE / 3)

        thread = threading.Thread(target=claim, daemon=True)
        thread.start()
        assert claimed.wait(LEASE + 5), (
            f"no claim within {LEASE + 5} s of freezing the owner inside its transaction "
            f"(tries so far took {[round(w, 1) for w in waits]} s)"
        )
        took = time.monotonic() - frozen
        assert max(waits) <= LEASE / 3 + 1.0, f"a try waited on the row {max(waits):.1f} s"
        assert took <= LEASE + 3.0
        assert sql.owners(engine)["nova"][0] == "m2"
        os.kill(proc.pid, signal.SIGCONT)
        # Woken, the old owner's next write is refused or its connection is gone.
        assert proc.wait(20) in (3, 4), proc.stdout.read()
        # The new owner goes on from what the old one committed, gap-free.
        store = sql.SQLStore(engine, "nova", "m3")
        store.claim()
        new = Dispatcher(store=store)
        seqs = [c.seq for c in new.history(0)]
        assert seqs == list(range(1, new.last_seq() + 1))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(10)
        claimed.wait(30)  # on a store without the bound, the claim ends with the owner
        engine.dispose()
        probe.dispose()


def session_bounds(conn: sa.engine.Connection) -> tuple[str, str]:
    """The connection's row-lock wait and idle-transaction bounds, as the database reports them."""
    if conn.dialect.name == "postgresql":
        wait = conn.execute(sa.text("SHOW lock_timeout")).scalar_one()
        idle = conn.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
        return wait, idle
    wait = conn.execute(sa.text("SELECT @@SESSION.innodb_lock_wait_timeout")).scalar_one()
    idle = conn.execute(sa.text("SELECT @@SESSION.idle_transaction_timeout")).scalar_one()
    return str(wait), str(idle)


def test_every_connection_is_bounded_once_and_a_fenced_commit_does_not_undo_it(url):
    """The bounds are the connection's own: set when it is made, kept after a rollback.

    A commit sends no statement of its own for them, and a fenced commit
    (rolled back whole) leaves them in place for the next transaction.
    """
    engine = sql.create_engine(url, create_tables=False, lease=LEASE)
    expected = {"postgresql": ("1s", "3s"), "mysql": ("1", "3")}[engine.dialect.name]
    sent: list[str] = []
    try:
        old = sql.SQLStore(engine, "nova", "m1")
        old.claim()
        dispatcher = Dispatcher(store=old)
        sql.SQLStore(engine, "nova", "m2").claim()  # m1's term is over
        sa.event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        e = Entity("nova.instance", "u1", state="S1", timestamp=timeutil.now())
        with pytest.raises(Fenced):
            dispatcher.dispatch([Change(Action.CREATE, e, fingerprint.of(e))])
        assert sent, "the fenced commit sent nothing"
        assert not [s for s in sent if "timeout" in s.lower()], sent
        # Every pooled connection, the fenced one among them, is still bounded.
        conns = [engine.connect() for _ in range(3)]
        try:
            assert [session_bounds(c) for c in conns] == [expected] * 3
        finally:
            for c in conns:
                c.close()
    finally:
        engine.dispose()
