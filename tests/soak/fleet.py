"""A soaked fleet: three members, a Redis and a PostgreSQL of their own, one journal.

:class:`Fleet` starts the fleet's parts (:mod:`tests.helpers.fleetparts`: a
redis-server for tooz and a PostgreSQL server for the shared store, each on
a free loopback port so that the chaos can stop, pause and restart them)
and three members (the real daemon with ``[coordination]`` and
``[database]``) on the shared RabbitMQ.  It offers the runner and the chaos
what one :class:`~tests.helpers.daemon.Daemon` offers (``logs``,
``count_logs``, ``wait_until``, ``env``), over every member's stderr in
arrival order (each line prefixed ``m1| ``), and what only a fleet has: the
database's owners, each member's ``/healthz``, and whether the fleet is
*settled*::

    fleet = Fleet(workdir, lambda port: daemon_config(cloud, names, port)).start()
    fleet.wait_settled(120)     # every partition held by its assigned owner, as the database says
    fleet.kill("m2"); fleet.restart("m2")

:class:`OwnershipSampler` reads the owners and every member's holdings once
a second for the ownership checks (:mod:`tests.soak.fleetchecks`).

Threading: members' reader threads append to the journal under its
condition; the sampler runs on a thread of its own; the rest is called
from the runner's and the chaos' one thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy.exc

from synchronizer.dispatch import sql
from synchronizer.fleet import partitions
from tests.helpers import fleetparts
from tests.helpers.daemon import Daemon
from tests.soak import probes, setup

MEMBERS = ("m1", "m2", "m3")
#: Seconds a member's /healthz may take before the sample calls it unanswered.
HEALTH_TIMEOUT = 3.0

Holders = dict[str, list[tuple[str, int]]]


class Journal:
    """Every member's stderr lines, in the order they were read."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.lines: list[str] = []

    def writer(self, member: str) -> Callable[[str], None]:
        def add(line: str) -> None:
            with self.cond:
                self.lines.append(f"{member}| {line}")
                self.cond.notify_all()

        return add


class Fleet:
    """The members and the fleet's own parts (see the module docstring)."""

    def __init__(self, workdir: Path, daemon_config: Callable[[int], str]) -> None:
        self.workdir = workdir
        self.daemon_config = daemon_config
        self.journal = Journal()
        self.members: dict[str, Daemon] = {}
        self.metrics_urls: dict[str, str] = {}
        self.redis: fleetparts.Redis | None = None
        self.postgres: fleetparts.Postgres | None = None
        self.engine: Any = None
        self.stop_seconds: dict[str, float | None] = {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Fleet:
        self.redis = fleetparts.Redis(self.workdir).start()
        self.postgres = fleetparts.Postgres().start()
        # The tables before the members: they then only claim, never race to create.
        self.engine = sql.create_engine(self.postgres.url)
        for name in MEMBERS:
            port = fleetparts.free_port()
            text = setup.member_config(
                self.daemon_config(port), name, self.redis.url, self.postgres.url
            )
            daemon = Daemon(setup.write(self.workdir / f"{name}.conf", text))
            daemon.on_log = self.journal.writer(name)
            self.members[name] = daemon
            self.metrics_urls[name] = f"http://127.0.0.1:{port}"
            daemon.start()
        return self

    def stop(self, timeout: float = 45.0) -> dict[str, int | None]:
        """SIGTERM every member at once (woken first if paused); their exit codes.

        ``stop_seconds`` says how long each took (None: killed after ``timeout``).
        """
        codes: dict[str, int | None] = {}
        running = self.alive()
        t0 = time.monotonic()
        for name in running:
            self.signal(name, signal.SIGCONT)
            self.members[name].proc.send_signal(signal.SIGTERM)
        for name, daemon in self.members.items():
            if daemon.proc is None:
                continue
            if name not in running:
                codes[name] = daemon.proc.returncode
                continue
            try:
                codes[name] = daemon.proc.wait(max(1.0, t0 + timeout - time.monotonic()))
                self.stop_seconds[name] = round(time.monotonic() - t0, 1)
            except subprocess.TimeoutExpired:
                daemon.proc.kill()
                daemon.proc.wait(5)
                codes[name], self.stop_seconds[name] = None, None
        for part in (self.redis, self.postgres):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.stop()
        if self.engine is not None:
            self.engine.dispose()
        return codes

    # -- what a single daemon offers -----------------------------------------

    @property
    def logs(self) -> list[str]:
        with self.journal.cond:
            return list(self.journal.lines)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for d in self.members.values() for r in d.records]

    @property
    def env(self) -> dict[str, str]:
        return self.members[MEMBERS[0]].env

    def count_logs(self, text: str) -> int:
        with self.journal.cond:
            return sum(text in line for line in self.journal.lines)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        with self.journal.cond:
            return self.journal.cond.wait_for(predicate, timeout)

    # -- members -------------------------------------------------------------

    def alive(self) -> list[str]:
        return [n for n, d in self.members.items() if d.proc is not None and d.proc.poll() is None]

    def pids(self, name: str | None = None) -> list[int]:
        """The main and worker pids of one member (of every live one with None)."""
        names = [name] if name else self.alive()
        out = []
        for n in names:
            daemon = self.members[n]
            if daemon.proc is not None and daemon.proc.poll() is None:
                out += [daemon.proc.pid, *daemon.worker_pids()]
        return out

    def signal(self, name: str, signo: int) -> None:
        """Send a signal to a member's main process and every worker of it."""
        for pid in self.pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signo)

    def kill(self, name: str) -> None:
        """SIGKILL a member and its workers at once (a host gone)."""
        self.signal(name, signal.SIGKILL)
        self.members[name].proc.wait(30)

    def terminate(self, name: str) -> int | None:
        """SIGTERM a member (it gives its partitions up); its exit code."""
        try:
            return self.members[name].stop(timeout=30)
        except Exception:  # noqa: BLE001 - killed after the timeout
            return None

    def restart(self, name: str) -> None:
        time.sleep(0.5)  # a killed member's workers see their parent gone and exit
        self.members[name].start()

    # -- what only a fleet has -----------------------------------------------

    def owners(self) -> dict[str, tuple[str | None, int]]:
        """``partition → (owner, term)`` in the database ({} while it does not answer)."""
        try:
            return sql.owners(self.engine)
        except sqlalchemy.exc.SQLAlchemyError:
            return {}

    def health(self, name: str) -> tuple[int, dict[str, Any]] | None:
        """A member's /healthz (status, report); None when it does not answer."""
        try:
            code, text = probes.fetch_status(self.metrics_urls[name] + "/healthz", HEALTH_TIMEOUT)
            return code, json.loads(text)
        except (OSError, ValueError):
            return None

    def holders(self) -> tuple[Holders, list[str]]:
        """``partition → [(member, term)]`` of what each live member says it holds;
        and the live members that did not answer."""
        found: Holders = {}
        silent = []
        for name in self.alive():
            answer = self.health(name)
            if answer is None:
                silent.append(name)
                continue
            for partition, report in answer[1].get("partitions", {}).items():
                if report.get("held"):
                    found.setdefault(partition, []).append((name, int(report["term"])))
        return found, silent

    def settled(self) -> bool:
        """Every member up and answering; each partition held by exactly the member
        the full fleet assigns it to, which is its database owner, under its
        database term.

        The assignment, not a balance: after a run of membership changes the
        holdings can be balanced and still not final (two members each holding
        the other's partition), with two hand-overs still to come.
        """
        alive = self.alive()
        if len(alive) != len(self.members):
            return False
        owners = self.owners()
        held, silent = self.holders()
        if silent or set(owners) != set(setup.PARTITIONS):
            return False
        final = partitions.assign(sorted(setup.PARTITIONS), sorted(self.members))
        return all(
            owner == final[partition] and held.get(partition) == [(owner, term)]
            for partition, (owner, term) in owners.items()
        )

    def wait_settled(self, timeout: float) -> float | None:
        """Seconds until the fleet settled; None if it did not within ``timeout``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.settled():
                return time.monotonic() - t0
            time.sleep(0.3)
        return None

    def healthy(self) -> bool:
        answers = [self.health(n) for n in self.alive()]
        return all(a is not None and a[0] == 200 for a in answers)

    def scrape(self, name: str) -> str:
        return probes.fetch(self.metrics_urls[name] + "/metrics")

    def metrics(self) -> tuple[list[str], dict[probes.Sample, float]]:
        """Every live member's /metrics text, and the samples summed over members."""
        texts, total = [], {}
        for name in self.alive():
            with contextlib.suppress(OSError):
                text = self.scrape(name)
                texts.append(text)
                for key, value in probes.parse(text).items():
                    total[key] = total.get(key, 0.0) + value
        return texts, total

    def rss(self) -> dict[str, int]:
        main = total = 0
        for name in self.alive():
            daemon = self.members[name]
            mine = probes.rss_kib(daemon.proc.pid)
            main += mine
            total += mine + sum(probes.rss_kib(p) for p in daemon.worker_pids())
        return {"main": main, "total": total}

    def rows(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """What the shared store's view holds of some entities (action, seq), for a report."""
        t = sql.entities
        out = {}
        with self.engine.connect() as conn:
            for etype, key in keys[:5]:
                query = sqlalchemy.select(t.c.action, t.c.seq).where(
                    t.c.type == etype, t.c.key == key
                )
                row = conn.execute(query).first()
                out[(etype, key)] = f"{row[0]} seq {row[1]}" if row else "nothing"
        return out

    def history(self) -> dict[tuple[str, int], str]:
        """``(partition, seq) → doc`` of every change the store committed."""
        with self.engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(sql.history.c.partition, sql.history.c.seq,
                                                  sql.history.c.doc))  # fmt: skip
            return {(p, int(s)): doc for p, s, doc in rows}


@dataclasses.dataclass(frozen=True)
class Sample:
    """One reading of ownership: the database's (before and after) and every member's."""

    started: float
    ended: float
    owners: dict[str, tuple[str | None, int]]
    holders: Holders
    silent: tuple[str, ...]
    stable: bool  # the database's owners did not change while the members were read


class OwnershipSampler:
    """Reads the owners and every member's holdings once a second, on its own thread."""

    def __init__(self, fleet: Fleet, interval: float = 1.0) -> None:
        self.fleet = fleet
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-owners", daemon=True)

    def start(self) -> OwnershipSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.time()
            before = self.fleet.owners()
            held, silent = self.fleet.holders()
            after = self.fleet.owners()
            stable = bool(before) and before == after
            self.samples.append(Sample(started, time.time(), after, held, tuple(silent), stable))
