"""B9 (a daemon restart with nothing changed), B10 (the cost of durability), B8 from the store.

B9 runs the real daemon (a subprocess) against the fake cloud (its own
process) with ``nova.instance`` and a ``jsonl`` sink to a file: what that
sink writes after a restart is what a restart publishes.  B10 and B8 run
the dispatcher in this process on the durable SQLite store against the
in-memory one, in the same run.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from bench import cloud as cycles
from bench import common, memory
from bench.cloud import _CONF, _cloud
from synchronizer import fingerprint
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.durable import SQLiteStore
from synchronizer.model import Action, Change

B9_TARGET = 1.2
B10_TARGET = 0.8
CHUNK = 1000  # changes per dispatch, as a worker's chunk_size
PAIRED_ROUNDS = 3  # B10's dispatcher rounds per run: each is one 1,000-change batch a store
# Seconds after the first listing, before the churn is measured: 5 s for
# 100,000 entities (the WAL checkpoint of a first listing), in proportion below.
SETTLE_PER_ENTITY = 5.0 / 100_000


def _settle(n: int) -> None:
    time.sleep(min(5.0, n * SETTLE_PER_ENTITY))


# -- B10 --------------------------------------------------------------------------


def _populated(n: int, store: Any) -> tuple[Dispatcher, list[Any]]:
    dispatcher = Dispatcher(store=store) if store is not None else Dispatcher()
    entities = common.population(n)
    for i in range(0, n, CHUNK):
        chunk = entities[i : i + CHUNK]
        dispatcher.dispatch([Change(Action.CREATE, e, fingerprint.of(e)) for e in chunk])
    # Steady state: the first listing's WAL checkpoint (on the store's own thread)
    # is over, as it is long before the next cycle in a daemon.
    if store is not None:
        _settle(n)
    return dispatcher, entities


def _churn_round(dispatcher: Dispatcher, entities: list[Any], seed: int) -> tuple[float, float]:
    """Seconds per change of dispatching one round's 1% churn (what a worker would send).

    Returned in wall time and in CPU seconds of the dispatching thread: on
    a machine shared with other work, wall time swings with the load, and
    this does far less (the store's checkpoint thread is in neither,
    unless it competes for the same core).
    """
    new, _ = common.churn(entities, 0.01, seed=seed)
    changed = [
        Change(Action.UPDATE, e, fingerprint.of(e))
        for e, old in zip(new, entities, strict=True)
        if e is not old
    ]
    entities[:] = new
    gc.collect()
    t0, c0 = time.perf_counter(), time.thread_time()
    told = 0
    for i in range(0, len(changed), CHUNK):
        told += len(dispatcher.dispatch(changed[i : i + CHUNK]))
    return (time.perf_counter() - t0) / max(1, told), (time.thread_time() - c0) / max(1, told)


def _paired_rounds(
    stores: dict[str, tuple[Dispatcher, list[Any]]], rounds: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Each round's same churn on every store in turn, in alternating order.

    Interleaved, so a change in the machine's load (a neighbour on the
    host) falls on both stores alike rather than on whichever ran second.
    """
    timed: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in stores}
    names = list(stores)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            wall, cpu = _churn_round(*stores[name], seed=100 + r)
            timed[name][0].append(wall)
            timed[name][1].append(cpu)
    return timed


_KEYS = "SELECT key FROM entity_rows WHERE type = ?"
_DOCS = (
    "SELECT rowid, doc FROM entity_rows WHERE type = ? AND key IN (SELECT value FROM json_each(?))"
)


def _sqlite_floor(db: Any, path: str, rounds: int, seed: int = 7) -> list[float]:
    """Seconds per change of the store's SQL for a 1% batch, with no Python per change.

    On the store's own connection (its page cache as the churn left it),
    each round issues what :class:`SQLiteStore` issues for a batch of
    1,000 changed keys (the headers read in one statement, the rows
    updated by rowid, the history inserted, ``seq``, ``COMMIT``) with
    every parameter built beforehand: what durability costs before any of
    our code runs.  The batch's documents are the entities' own.
    """
    import random
    import sqlite3

    from synchronizer.dispatch import durable as store

    rng = random.Random(seed)
    # The batches are prepared on a connection of their own: reading them on
    # the store's would put their pages in its cache before they are timed.
    prepare = sqlite3.connect(path)
    keys = [k for (k,) in prepare.execute(_KEYS, (common.INSTANCE,))]
    (seq,) = prepare.execute("SELECT max(seq) FROM history").fetchone()
    per_change = []
    try:
        for _ in range(rounds):
            picked = orjson.dumps(rng.sample(keys, max(1, len(keys) // 100))).decode()
            rows = prepare.execute(_DOCS, (common.INSTANCE, picked)).fetchall()
            updates = sorted(
                (
                    (seq + i + 1, "update", i, "2026-12-01T00:00:00Z", 0, doc, rowid)
                    for i, (rowid, doc) in enumerate(rows)
                ),
                key=lambda r: r[-1],
            )
            history = [
                (seq + i + 1, common.INSTANCE, time.time(), doc) for i, (_, doc) in enumerate(rows)
            ]
            seq += len(rows)
            t0 = time.perf_counter()
            db.execute(store._PREFETCH, (common.INSTANCE, picked)).fetchall()
            db.execute("BEGIN")
            db.executemany(store._UPDATE, updates)
            db.executemany("INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?)", history)
            db.execute("UPDATE meta SET value = ? WHERE name = 'seq'", (str(seq),))
            db.execute("COMMIT")
            per_change.append((time.perf_counter() - t0) / len(rows))
    finally:
        prepare.close()
    return per_change


def _cycle_cost(servers: int, rounds: int) -> dict[str, Any]:
    """What durability costs a whole poll cycle: B1's cycle on each store, same cloud.

    One fake cloud, two deliveries (each its own collector baseline,
    dispatcher and subscriber): one on the SQLite store, one on the
    in-memory store.  Each round changes 1% of the servers, then times a
    full cycle (fetch, parse, convert, fingerprint, diff, dispatch, hand-off
    to the subscriber) on each, in turn and in alternating order, so both
    see the same changes and the same machine.
    """
    workdir = tempfile.mkdtemp(prefix="bench-state-")
    timed: dict[str, list[float]] = {"sqlite": [], "memory": []}
    try:
        with _cloud(servers) as cloud:
            deliveries = {
                "sqlite": cycles._Delivery(SQLiteStore(os.path.join(workdir, "state.db"))),
                "memory": cycles._Delivery(),
            }
            setups = {name: cycles._setup(cloud, d) for name, d in deliveries.items()}
            loops = {name: loop for name, (_, loop) in setups.items()}
            _settle(servers)  # the first listing's checkpoint, as in the dispatcher's figure
            for r in range(rounds):
                cloud.age(-80000.0 + r)
                cloud.change(fraction=0.01)
                order = ["sqlite", "memory"] if r % 2 == 0 else ["memory", "sqlite"]
                for name in order:
                    timed[name].append(cycles._full_cycle(loops[name], deliveries[name]))
            for name, delivery in deliveries.items():
                setups[name][0].close()
                delivery.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratios = [m / d for d, m in zip(timed["sqlite"], timed["memory"], strict=True)]
    return {
        "cycle_s": {name: common.median_spread(t)[0] for name, t in timed.items()},
        "cycle_ratio": sorted(ratios)[len(ratios) // 2],
        "cycle_ratio_spread": [min(ratios), max(ratios)],
        "servers": servers,
    }


def b10(n: int, rounds: int, servers: int | None = None) -> dict[str, Any]:
    path = os.path.join(tempfile.mkdtemp(prefix="bench-state-"), "state.db")
    try:
        stores = {"sqlite": _populated(n, SQLiteStore(path)), "memory": _populated(n, None)}
        timed = _paired_rounds(stores, rounds * PAIRED_ROUNDS)
        durable = stores["sqlite"][0]
        floor = _sqlite_floor(durable.store.db, path, rounds)
        durable.close()
        del stores
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    (on_disk, cpu_sqlite), (in_memory, cpu_memory) = timed["sqlite"], timed["memory"]
    paired = sorted(m / d for d, m in zip(on_disk, in_memory, strict=True))
    disk, disk_spread = common.median_spread(on_disk)
    base, base_spread = common.median_spread(in_memory)
    throughput_ratio = base / disk
    cpu_disk, cpu_base = common.median_spread(cpu_sqlite)[0], common.median_spread(cpu_memory)[0]
    whole_cycle = _cycle_cost(servers, rounds) if servers else None
    return common.figure(
        1 / disk,
        "changes/s",
        1 / base,
        f">= {B10_TARGET}x the in-memory store's throughput",
        throughput_ratio >= B10_TARGET,
        per_change_us={"sqlite": disk * 1e6, "memory": base * 1e6},
        cpu_per_change_us={"sqlite": cpu_disk * 1e6, "memory": cpu_base * 1e6},
        cpu_ratio=cpu_base / cpu_disk,
        sqlite_floor_us=common.median_spread(floor)[0] * 1e6,
        floor_ratio=base / common.median_spread(floor)[0],
        paired_ratio=paired[len(paired) // 2],
        paired_ratio_spread=[paired[0], paired[-1]],
        spread_us={
            "sqlite": [x * 1e6 for x in disk_spread],
            "memory": [x * 1e6 for x in base_spread],
        },
        entities=n,
        churned_per_round=n // 100,
        rounds=rounds,
        whole_cycle=whole_cycle,
        note="dispatch (ledger rules, seq, commit with history, fan-out) of each round's "
        "1% churn in chunks of 1,000, after the first listing's checkpoint settled; "
        "baseline: the same on the in-memory store, the rounds of both interleaved in "
        "alternating order; ratio = throughput with SQLite / in memory (medians); "
        "paired_ratio: the median of the rounds' own ratios; cpu_ratio: the same in "
        "CPU time of the dispatching thread; "
        "sqlite_floor_us: the store's SQL statements alone for the same batches, "
        "parameters built beforehand (no Python a change), and floor_ratio the "
        "ratio that a store with no cost of its own beyond them would reach; "
        "whole_cycle: B1's full poll cycle (fetch to subscriber, 1% changed) of `servers` "
        "servers on each store, same cloud, same run, and cycle_ratio the throughput "
        "ratio of whole cycles (median of per-round ratios)",
    )


# -- B8 from the store ---------------------------------------------------------------


def b8_store(n: int, runs: int) -> dict[str, Any]:
    """A new subscriber's snapshot, and the RPC view read, from the durable store."""
    path = os.path.join(tempfile.mkdtemp(prefix="bench-state-"), "state.db")
    try:
        dispatcher, _ = _populated(n, SQLiteStore(path))
        ours, rpc, building = [], [], []
        items = 0
        for _ in range(runs):
            gc.collect()
            t, items = memory._snapshot_once(dispatcher)
            ours.append(t)
            rpc.append(common.timed(lambda: dispatcher.view_docs([common.INSTANCE]))[0])
        mem, _ = _populated(n, None)
        for _ in range(runs):
            gc.collect()
            building.append(common.timed(lambda: mem.current([common.INSTANCE]))[0])
        dispatcher.close()
    finally:
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    value, spread = common.median_spread(ours)
    base, base_spread = common.median_spread(building)
    return common.figure(
        value,
        "s",
        base,
        f"<= {memory.B8_TARGET} s",
        value <= memory.B8_TARGET,
        spread=spread,
        baseline_spread=base_spread,
        rpc_view_read_s=common.median_spread(rpc)[0],
        entities=n,
        items_delivered=items,
        note="a new subscriber's snapshot and Synced from the SQLite store; baseline: "
        "building the view from the in-memory ledger (Dispatcher.current), same run; "
        "rpc_view_read_s: the RPC view's read of the store (its own WAL snapshot)",
    )


# -- B9 -------------------------------------------------------------------------------


class _Daemon:
    """``synchronizer`` as a subprocess; its stderr read for READY and cycle times."""

    READY = "Ready:"
    CYCLE = re.compile(r"full cycle listed (\d+) entities.* in ([0-9.]+) s")

    def __init__(self, conf: Path) -> None:
        exe = Path(sys.executable).with_name("synchronizer")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [str(exe), "--config-file", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready_after: float | None = None
        self.cycles: list[float] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            if self.READY in line and self.ready_after is None:
                self.ready_after = time.monotonic() - self.t0
                self._ready.set()
            match = self.CYCLE.search(line)
            if match:
                self.cycles.append(float(match.group(2)))

    def wait_ready(self, timeout: float = 600) -> float:
        if not self._ready.wait(timeout):
            raise RuntimeError("the daemon was not ready in time")
        return self.ready_after or 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def _restart(workdir: Path, auth_url: str, state: str) -> dict[str, Any]:
    """Start (first listing), stop, start again on an unchanged cloud; what the restart sent."""
    jsonl = workdir / f"{state}.jsonl"
    conf = workdir / f"{state}.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = nova.instance\nsinks = jsonl\n"
        f"jsonl_path = {jsonl}\nstate = {state}\nchunk_size = 1000\n"
        + _CONF.format(auth_url=auth_url, group="nova.instance")
        + "period = 3600\n"
    )
    first = _Daemon(conf)
    first.wait_ready()
    deadline = time.monotonic() + 120
    while first.cycles and _lines(jsonl) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # the sink's feed writes what is committed
    first.stop()
    before = _lines(jsonl)
    again = _Daemon(conf)
    ready = again.wait_ready()
    time.sleep(3.0)
    again.stop()
    return {
        "published_first": before,
        "published_after_restart": _lines(jsonl) - before,
        "ready_after_restart_s": ready,
        "restart_cycle_s": again.cycles[0] if again.cycles else None,
        "first_cycle_s": first.cycles[0] if first.cycles else None,
    }


def b9(servers: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    try:
        with _cloud(servers) as cloud:
            durable = _restart(workdir, cloud.auth_url, "sqlite")
            today = _restart(workdir, cloud.auth_url, "memory")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    cycle = durable["first_cycle_s"] or 0.0
    ready_ratio = durable["ready_after_restart_s"] / cycle if cycle else None
    unchanged = durable["restart_cycle_s"] or 0.0
    sent = durable["published_after_restart"]
    return common.figure(
        sent,
        "changes",
        today["published_after_restart"],
        f"0 published; READY <= {B9_TARGET}x one full cycle",
        sent == 0 and ready_ratio is not None and ready_ratio <= B9_TARGET,
        ready_after_restart_s=durable["ready_after_restart_s"],
        one_full_cycle_s=cycle,
        ready_ratio=ready_ratio,
        ready_ratio_vs_unchanged_cycle=(
            durable["ready_after_restart_s"] / unchanged if unchanged else None
        ),
        durable=durable,
        memory_state=today,
        servers=servers,
        note="a daemon restart on an unchanged cloud: changes its jsonl sink wrote after "
        "the restart; baseline: the same with state = memory (today's behaviour); "
        "READY measured from the process start, against the first run's full cycle",
    )
