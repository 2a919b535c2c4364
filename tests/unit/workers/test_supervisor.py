"""The supervisor with real spawned workers: messages, back-off, permanent exits, reloads, stop."""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time

import pytest

from synchronizer.workers import supervisor
from synchronizer.workers.supervisor import Supervisor, WorkerSpec
from tests.unit.workers import targets


class Heard:
    """What the supervisor's callbacks were told, stamped with when."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[float, str, tuple]] = queue.Queue()
        self.lock = threading.Lock()
        self.restarts: list[str] = []

    def on_message(self, name: str, message: tuple) -> None:
        self.messages.put((time.monotonic(), name, message))

    def on_restart(self, name: str) -> None:
        with self.lock:
            self.restarts.append(name)

    def take(self, count: int, timeout: float = 20.0) -> list[tuple[float, str, tuple]]:
        deadline = time.monotonic() + timeout
        return [
            self.messages.get(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)
        ]

    def hellos(self, count: int, timeout: float = 20.0) -> dict[str, int]:
        """The pids of the next ``count`` hellos, by worker name."""
        return {name: msg[2] for _, name, msg in self.take(count, timeout)}

    def quiet(self, seconds: float) -> bool:
        try:
            self.messages.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def run():
    """Start supervisors with given back-off; every one is stopped at the end."""
    started: list[Supervisor] = []

    def start(
        heard: Heard, delay: float = 0.05, max_delay: float = 60.0, grace: float = 5.0
    ) -> Supervisor:
        sup = Supervisor(
            heard.on_message,
            restart_delay=delay,
            restart_max_delay=max_delay,
            on_restart=heard.on_restart,
            stopped_grace=grace,
        )
        sup.start()
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.stop(timeout=2.0)


def spec(name: str, target, *args, digest: str = "d1") -> WorkerSpec:
    return WorkerSpec(name, target, (name, *args), digest)


def test_messages_reach_on_message_in_order_with_their_worker(run):
    """Each worker's messages reach on_message in the order sent, under that worker's name."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.count_then_wait, 500), spec("b", targets.count_then_wait, 500)])
    got = heard.take(1000)
    by_worker = {name: [msg for _, who, msg in got if who == name] for name in ("a", "b")}
    assert by_worker == {name: [(name, i) for i in range(500)] for name in ("a", "b")}


@pytest.mark.parametrize(
    ("code", "delay", "max_delay", "restarts"),
    [
        pytest.param(2, 0.3, 10.0, 3, id="exit 2: doubling"),
        pytest.param(1, 0.1, 0.2, 5, id="exit 1: capped"),
    ],
)
def test_a_worker_that_exits_is_restarted_with_back_off(run, code, delay, max_delay, restarts):
    """A worker that exits is started again after a delay that doubles up to the maximum."""
    heard = Heard()
    sup = run(heard, delay, max_delay)
    sup.ensure([spec("w", targets.hello_then_exit, code)])
    got = heard.take(restarts + 1, timeout=30)
    times = [t for t, _, _ in got]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    expected = [min(delay * 2**k, max_delay) for k in range(restarts)]
    assert all(gap >= want - 0.02 for gap, want in zip(gaps, expected, strict=True)), gaps
    assert gaps[-1] < expected[-1] + 1.3, gaps  # capped: not still doubling
    assert len({msg[2] for _, _, msg in got}) == restarts + 1  # a new process each time
    assert heard.restarts[:restarts] == ["w"] * restarts


def test_a_worker_stopped_by_a_signal_waits_the_grace_before_its_restart(run):
    """Exit 0 (SIGTERM to the process group): restarted only after the grace, not the delay."""
    heard = Heard()
    sup = run(heard, delay=0.05, grace=1.0)
    sup.ensure([spec("w", targets.hello_then_exit, 0)])
    got = heard.take(2, timeout=10)
    gap = got[1][0] - got[0][0]
    assert gap >= 1.0 - 0.02, gap
    assert heard.restarts[:1] == ["w"]


def test_a_permanent_exit_stays_down_until_ensured_again(run):
    """A worker exiting with EXIT_PERMANENT is not restarted; the next ensure() starts it again."""
    heard = Heard()
    sup = run(heard, delay=0.05)
    permanent = spec("p", targets.hello_then_exit, supervisor.EXIT_PERMANENT)
    sup.ensure([permanent])
    first = heard.hellos(1)
    assert heard.quiet(1.0)  # twenty restart delays
    assert heard.restarts == []
    sup.ensure([permanent])
    again = heard.hellos(1)
    assert first.keys() == again.keys() == {"p"}
    assert first["p"] != again["p"]


def test_a_reconfigured_worker_is_restarted_and_an_unchanged_one_left_alone(run):
    """On ensure(), a spec whose digest changed gets a new process; an unchanged one keeps its."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.hello_then_wait), spec("b", targets.hello_then_wait)])
    pids = heard.hellos(2)
    b = pids["b"]
    for round_ in range(2, 6):
        old = pids["a"]
        sup.ensure(
            [
                spec("a", targets.hello_then_wait, digest=f"d{round_}"),
                spec("b", targets.hello_then_wait),
            ]
        )
        pids = heard.hellos(1)
        assert set(pids) == {"a"}
        assert pids["a"] != old
        assert not alive(old)
        assert alive(b)
    assert heard.quiet(0.3)
    assert heard.restarts == []


def test_a_removed_worker_is_stopped(run):
    """ensure() without a worker's spec stops that worker and leaves the others running."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.hello_then_wait), spec("b", targets.hello_then_wait)])
    pids = heard.hellos(2)
    sup.ensure([spec("b", targets.hello_then_wait)])
    assert (alive(pids["a"]), alive(pids["b"])) == (False, True)
    sup.ensure([])
    assert not alive(pids["b"])
    assert heard.quiet(0.5)


def test_stop_ends_every_worker_within_its_timeout(run):
    """stop() ends every worker, killing one that ignores SIGTERM, within its timeout plus 1.5 s."""
    heard = Heard()
    sup = run(heard, delay=0.05)
    sup.ensure(
        [
            spec("a", targets.hello_then_wait),
            spec("b", targets.hello_then_wait),
            spec("stubborn", targets.hello_then_ignore_sigterm),
        ]
    )
    pids = heard.hellos(3)
    started = time.monotonic()
    sup.stop(timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 1.5
    assert [name for name, pid in pids.items() if alive(pid)] == []
    assert heard.quiet(0.5)  # and nothing is restarted after stop
    assert heard.restarts == []


class Blocking(Heard):
    """Holds on_message (as a full inbox does) on the first message of each worker named."""

    def __init__(self, *names: str) -> None:
        super().__init__()
        self.held = {name: threading.Event() for name in names}
        self.release = {name: threading.Event() for name in names}
        self.first_held: str | None = None

    def on_message(self, name: str, message: tuple) -> None:
        super().on_message(name, message)
        if name in self.held and not self.held[name].is_set():
            self.first_held = self.first_held or name
            self.held[name].set()
            self.release[name].wait(20)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_worker_removed_while_its_message_waits_does_not_stop_the_reader(run, tmp_path):
    """Removing a worker whose message waits while on_message blocks leaves the others heard."""
    heard = Blocking("gate", "a", "b")
    sup = run(heard)
    gate = spec("gate", targets.hello_then_wait)
    sup.ensure([gate])
    assert heard.held["gate"].wait(20)  # the reader is held inside on_message
    marks = {n: tmp_path / n for n in ("a", "b")}
    workers = {n: spec(n, targets.hello_mark_then_wait, str(marks[n])) for n in ("a", "b")}
    sup.ensure([gate, *workers.values()])
    wait_for(lambda: all(m.exists() for m in marks.values()))  # both hellos wait in their pipes
    heard.release["gate"].set()
    wait_for(lambda: heard.held["a"].is_set() or heard.held["b"].is_set())
    kept = "a" if heard.held["a"].is_set() else "b"
    sup.ensure([gate, workers[kept]])  # the other one goes, its hello still unread
    heard.release[kept].set()
    heard.release["a" if kept == "b" else "b"].set()
    sup.ensure([gate, workers[kept], spec("c", targets.hello_then_wait)])
    names = []
    while "c" not in names and len(names) < 4:  # gate, the kept one, maybe the removed one, c
        try:
            names += [name for _, name, _ in heard.take(1, timeout=15)]
        except queue.Empty:
            break
    assert names[:2] == ["gate", kept]
    assert "c" in names, f"the supervisor stopped reading its workers after {names}"


def gated(name: str, digest: str = "d1") -> WorkerSpec:
    return WorkerSpec(name, targets.ready_then_gated, (name,), digest, gated=True)


def test_a_worker_on_standby_waits_at_its_gate_and_starts_when_wanted(run):
    """On standby: prepared and silent; wanted: the same process goes on at once."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([], standby=[gated("s")])
    _, name, (word, _, pid) = heard.take(1)[0]
    assert (name, word) == ("s", "ready")
    assert heard.quiet(0.5)  # it waits at its gate
    opened = time.monotonic()
    sup.ensure([gated("s")])
    when, _, (word, _, hello_pid) = heard.take(1)[0]
    assert (word, hello_pid) == ("hello", pid)  # the same process, not a new one
    assert when - opened < 0.5


def test_a_worker_that_ran_is_replaced_by_a_fresh_one_on_standby(run):
    """Running, then wanted on standby: a new process that waits at its gate."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([gated("s")])
    got = heard.take(2)
    assert [m[0] for _, _, m in got] == ["ready", "hello"]
    first = got[0][2][2]
    sup.ensure([], standby=[gated("s")])
    _, _, (word, _, pid) = heard.take(1)[0]
    assert word == "ready"
    assert pid != first
    assert not alive(first)
    assert heard.quiet(0.5)
    sup.ensure([])
    assert not alive(pid)


def test_a_worker_on_standby_that_dies_is_restarted_on_standby(run):
    """A standby worker killed: restarted with back-off, still waiting at its gate."""
    heard = Heard()
    sup = run(heard, delay=0.05)
    sup.ensure([], standby=[gated("s")])
    _, _, (_, _, pid) = heard.take(1)[0]
    os.kill(pid, 9)
    _, _, (word, _, again) = heard.take(1)[0]
    assert word == "ready"
    assert again != pid
    assert heard.quiet(0.5)
    sup.ensure([gated("s")])
    _, _, (word, _, hello) = heard.take(1)[0]
    assert (word, hello) == ("hello", again)


def test_a_worker_taken_off_standby_that_dies_restarts_running(run):
    """Once its gate opened, a worker that dies is restarted straight into its work."""
    heard = Heard()
    sup = run(heard, delay=0.05)
    sup.ensure([], standby=[gated("s")])
    heard.take(1)
    sup.ensure([gated("s")])
    _, _, (word, _, pid) = heard.take(1)[0]
    assert word == "hello"
    os.kill(pid, 9)
    got = heard.take(2)
    assert [m[0] for _, _, m in got] == ["ready", "hello"]
    assert got[0][2][2] != pid


def test_a_worker_stopped_with_drain_has_its_last_messages_read(run):
    """drain=True: what a worker sends while it stops reaches on_message, then it is gone."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.flush_on_sigterm, 300), spec("b", targets.hello_then_wait)])
    pids = heard.hellos(2)
    sup.ensure([spec("b", targets.hello_then_wait)], drain=True)
    assert sup.wait_drained(10)
    last = [msg[:2] for _, name, msg in heard.take(300) if name == "a"]
    assert last == [("a", i) for i in range(300)]
    assert (alive(pids["a"]), alive(pids["b"])) == (False, True)
    assert heard.quiet(0.3)
    assert heard.restarts == []


def test_a_drained_worker_that_does_not_stop_is_killed(run, monkeypatch):
    """A worker that ignores SIGTERM is killed after DRAIN_WAIT; the wait ends then."""
    monkeypatch.setattr(supervisor, "DRAIN_WAIT", 0.5)
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("stubborn", targets.hello_then_ignore_sigterm)])
    pids = heard.hellos(1)
    sup.ensure([], drain=True)
    assert not sup.wait_drained(0.1)
    assert sup.wait_drained(5)
    assert not alive(pids["stubborn"])


def test_stop_with_drain_hands_on_what_the_workers_send_while_stopping(run):
    """stop(drain=True): a stopping daemon still gets its workers' last messages."""
    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.flush_on_sigterm, 300)])
    pids = heard.hellos(1)
    sup.stop(timeout=5.0, drain=True)
    last = [msg[:2] for _, name, msg in heard.take(300, timeout=1.0) if name == "a"]
    assert last == [("a", i) for i in range(300)]
    assert not alive(pids["a"])
    assert heard.restarts == []


def test_an_answer_reaches_the_worker_that_asked_and_no_other(run):
    """answer() goes to the process that sent the chunk; a restarted worker gets nothing."""
    from synchronizer import wire

    heard = Heard()
    sup = run(heard)
    sup.ensure([spec("a", targets.echo_answers)])
    ((_, _, hello),) = heard.take(1)
    pid = hello[2]
    sup.answer("a", pid, wire.Committed(7))
    ((_, name, echoed),) = heard.take(1)
    assert (name, echoed) == ("a", ("answered", "a", wire.Committed(7)))
    sup.answer("a", pid + 1, wire.Committed(8))  # not that process: nothing sent
    sup.answer("nobody", pid, wire.Committed(9))
    assert heard.quiet(0.5)
    # The answering block: committed when it ends, refused when it raises.
    chunk = wire.Changes(b"[]", through=11, sender=pid)
    with sup.answering("a", chunk):
        pass
    with pytest.raises(RuntimeError), sup.answering("a", wire.Changes(b"[]", 12, pid)):
        raise RuntimeError("the store failed")
    sup.refuse("a", wire.Changes(b"[]", 13, pid))
    with sup.answering("a", wire.Changes(b"[]")):  # asks for no answer: none sent
        pass
    got = [msg[2] for _, _, msg in heard.take(3)]
    assert got == [wire.Committed(11), wire.Committed(12, ok=False), wire.Committed(13, ok=False)]
    assert heard.quiet(0.5)
