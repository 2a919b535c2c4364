"""One soak run: start everything, churn under faults, go quiet, collect the figures.

Phases: start (fake cloud, daemon, publisher, consumers), warm-up (churn
without faults; memory is measured after it), chaos (churn plus the fault
plan), quiet (no churn, no faults, until every collector has listed twice
in full and the stream is drained), then the reference listing and the
figures :mod:`tests.soak.checks` judges.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synchronizer import opts
from synchronizer.model import Change
from synchronizer.plugin_loader import shipped_plugins
from synchronizer_fakecloud import Credentials
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_fakecloud.testbed import free_port
from tests.helpers.daemon import Daemon, script
from tests.soak import probes, setup
from tests.soak.chaos import COLLECTORS, Chaos, plan
from tests.soak.checker import StreamChecker
from tests.soak.consumers import CheckerConsumer, FaultyConsumer
from tests.soak.publisher import NovaPublisher
from tests.soak.scenario import SIZES, Scenario
from tests.soak.truth import Truth, live_keys

STEP_INTERVAL = 0.2
_FULL = re.compile(r"(\S+): full cycle listed .* complete$")


class SoakError(RuntimeError):
    """The run could not be carried out (not a failed check)."""


def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if predicate():
                return
        time.sleep(0.25)
    raise SoakError(f"timed out after {timeout:.0f} s waiting for {what}")


def volatile_by_type() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for _, cls in shipped_plugins():
        for etype in getattr(cls, "entity_types", ()):
            out[etype] = out.get(etype, frozenset()) | cls.volatile_properties
    return out


class Run:
    """Everything one run owns; :meth:`execute` returns the figures."""

    def __init__(
        self,
        seed: int,
        minutes: float,
        quick: bool,
        log: Callable[[str], None],
        options: dict[str, str] | None = None,
    ) -> None:
        self.seed, self.minutes, self.quick, self.log = seed, minutes, quick, log
        self.options = options or {}
        self.rng = random.Random(seed)
        self.names = setup.Names(f"{seed:x}-{os.getpid()}")
        self.tmp = tempfile.TemporaryDirectory(prefix="soak-")
        self.truth = Truth()
        self.figures: dict[str, Any] = {"seed": seed, "quick": quick, "options": self.options}
        self._stop_churn = threading.Event()
        self.cloud: FakeCloud | None = None
        self.daemon: Daemon | None = None
        self.publisher: NovaPublisher | None = None
        self.consumers: list[Any] = []
        self.broker = probes.Broker()

    # -- lifecycle ---------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        t0 = time.monotonic()
        try:
            self._start()
            chaos_seconds = max(30.0, self.minutes * 60 - 75)
            warmup = 10.0 if self.quick else 30.0
            self._churn_phase(warmup, None)
            self.figures["rss_warm_kib"] = self._rss()
            self._churn_phase(chaos_seconds, self._plan(chaos_seconds))
            self._quiet()
            self._collect()
            self.figures["daemon_log"] = str(self.dump_logs())
        except SoakError:
            self.figures["daemon_log"] = str(self.dump_logs())
            raise
        finally:
            self.figures["minutes"] = round((time.monotonic() - t0) / 60, 2)
            self._teardown()
        return self.figures

    def _start(self) -> None:
        self.figures["broker_ctl"] = self.broker.find_node()
        if not self.figures["broker_ctl"]:
            self.log(f"rabbitmqctl reaches no node ({self.broker.ctl_error}); no broker cut")
        creds = Credentials(password=setup.PASSWORD)
        self.cloud = FakeCloud(
            credentials=creds,
            nagios_password=setup.NAGIOS_PASSWORD,
            token_prefix=setup.TOKEN_PREFIX,
            seed=self.seed,
        ).start()
        self.cloud.token_expiry(30)
        self.scenario = Scenario(self.cloud, self.truth, random.Random(self.rng.random()))
        made = self.scenario.populate(SIZES["quick" if self.quick else "long"])
        self.figures["initial"] = made
        self._start_daemon()
        wait_for(
            "the notification listener",
            lambda: self.daemon.count_logs("Listening for") >= 1,
            60,
        )
        self.publisher = NovaPublisher(
            setup.TRANSPORT_URL, self.names.nova_topic, random.Random(self.rng.random())
        )
        self.publisher.start()
        self._start_consumers()

    def _start_daemon(self) -> None:
        """Start what the run soaks: here one daemon (``self.daemon``), until it is healthy."""
        port = free_port()
        self.metrics_url = f"http://127.0.0.1:{port}"
        config = setup.daemon_config(self.cloud, self.names, port, self.options)
        conf = setup.write(Path(self.tmp.name) / "soak.conf", config)
        self.conf_path = conf
        self.daemon = Daemon(conf).start()
        self.log(f"daemon pid {self.daemon.proc.pid}; metrics {self.metrics_url}")
        wait_for("the daemon's first snapshot (/healthz 200)", self._healthy, 120)

    def _healthy(self) -> bool:
        try:
            probes.fetch(self.metrics_url + "/healthz")  # 503 raises HTTPError
        except OSError:
            return False
        return True

    def _start_consumers(self) -> None:
        path = setup.write(Path(self.tmp.name) / "consumer.conf", setup.consumer_config(self.names))
        self.checker = StreamChecker(self.truth, volatile_by_type(), stream_of=self._stream_of)

        def conf():  # each consumer its own ConfigOpts
            return opts.parse(["--config-file", str(path)], setup_logging=False)

        self.watcher = CheckerConsumer(conf(), self.checker, self.names.watch_pool)
        self.raiser = FaultyConsumer(conf(), self.names.raise_pool, raise_every=3)
        self.staller = FaultyConsumer(conf(), self.names.stall_pool, stall_every=50)
        for consumer in (self.raiser, self.staller, self.watcher):
            consumer.start()
            self.consumers.append(consumer)
        if not self.checker.synced.wait(60):
            raise SoakError("the checker consumer got no view from the daemon in 60 s")

    @staticmethod
    def _stream_of(etype: str) -> str:
        """The stream whose seq orders an entity type's changes: the daemon's one."""
        return ""

    # -- churn and faults -------------------------------------------------

    def _churn(self) -> None:
        next_at = time.monotonic()
        while not self._stop_churn.is_set():
            event = self.scenario.step()
            if event is not None:
                self.publisher.offer(event)
            next_at += STEP_INTERVAL
            self._stop_churn.wait(max(0.0, next_at - time.monotonic()))

    def _churn_phase(self, seconds: float, episodes: list[tuple[float, str]] | None) -> None:
        self._stop_churn.clear()
        churn = threading.Thread(target=self._churn, name="soak-churn", daemon=True)
        start = time.monotonic()
        churn.start()
        if episodes is not None:
            self.log(f"chaos: {len(episodes)} fault episodes over {seconds:.0f} s")
            self.chaos = self._make_chaos(random.Random(self.rng.random()))
            self.chaos.on_daemon_restart = self.watcher.resume
            for offset, kind in episodes:
                delay = start + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if kind == "broker_cut" and not self.figures["broker_ctl"]:
                    self.chaos.errors.append("broker_cut: rabbitmqctl reaches no node")
                    continue
                self.log(f"  {time.monotonic() - start:5.1f} s  {kind}")
                self.chaos.run(kind)
        remaining = start + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        self._stop_churn.set()
        churn.join(30)

    def _make_chaos(self, rng: random.Random) -> Chaos:
        chaos = Chaos(
            self.cloud, self.daemon, self.broker, self.publisher, rng, setup.CLIENT_TIMEOUT
        )
        chaos.metrics_url = self.metrics_url
        return chaos

    def _plan(self, seconds: float) -> list[tuple[float, str]]:
        return plan(self.rng, seconds, self.quick)

    # -- quiet and settle ----------------------------------------------------

    def _full_cycles(self) -> dict[str, int]:
        counts = dict.fromkeys(COLLECTORS, 0)
        for line in list(self.daemon.logs):
            match = _FULL.search(line)
            if match and match.group(1) in counts:
                counts[match.group(1)] += 1
        return counts

    def _quiet(self) -> None:
        self.cloud.clear_faults()
        self.cloud.keystone_down(False)
        self.log("quiet: no churn, no faults; waiting for two full cycles of every collector")
        if not self.publisher.flush(60):
            raise SoakError("the Nova publisher could not publish its backlog in 60 s")
        before = self._full_cycles()

        def lagging() -> list[str]:
            return sorted(p for p, n in self._full_cycles().items() if n < before[p] + 2)

        try:
            wait_for("two complete full cycles of every collector", lambda: not lagging(), 95)
        except SoakError as exc:
            raise SoakError(f"{exc}; lagging: {', '.join(lagging())}") from None
        self._settle()

    def _settle(self) -> None:
        last: list[Any] = [None]

        def drained() -> bool:
            backlog, delivered = self._backlog()
            mark = (delivered, self.watcher.recorder.received)
            idle = time.time() - self.checker.last_item_at > 2.0
            quiet = backlog == 0 and self.broker.depth(self.names.watch_pool) == 0 and idle
            stable, last[0] = mark == last[0], mark
            return quiet and stable

        wait_for("the stream to drain", drained, 90)

    def _backlog(self) -> tuple[float, float]:
        """What the daemon has still to send, and a count that grows while it sends."""
        samples = probes.parse(probes.fetch(self.metrics_url + "/metrics"))
        backlog = probes.total(samples, "synchronizer_subscriber_backlog")
        return backlog, probes.total(samples, "synchronizer_subscriber_delivered_total")

    # -- figures -----------------------------------------------------------

    def _pids(self) -> list[int]:
        return [self.daemon.proc.pid, *self.daemon.worker_pids()]

    def _rss(self) -> dict[str, int]:
        main = probes.rss_kib(self.daemon.proc.pid)
        workers = sum(probes.rss_kib(p) for p in self.daemon.worker_pids())
        return {"main": main, "total": main + workers}

    def _reference(self) -> tuple[dict[tuple[str, str], Any], str]:
        out = subprocess.run(
            [script("synchronizer-snapshot"), "--config-file", str(self.conf_path)],
            capture_output=True,
            text=True,
            timeout=180,
            env=self.daemon.env,
            check=False,
        )
        if out.returncode != 0:
            raise SoakError(
                f"synchronizer-snapshot failed ({out.returncode}): {out.stderr[-2000:]}"
            )
        reference = {}
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                entity = Change.from_dict(json.loads(line)).entity
                reference[(entity.type, entity.key)] = entity
        return reference, out.stdout + out.stderr

    def _collect(self) -> None:
        f = self.figures
        f["reference"], reference_text = self._reference()
        f["truth"] = live_keys(self.cloud)
        f["lives"] = self.truth
        f["world"] = self.checker.world()
        f["findings"] = self.checker.findings
        f["last_told"] = self.checker.last_told
        f["metrics_text"], f["metrics"] = self._scrape()
        f["healthz_code"], f["healthz_text"] = self._health()
        if getattr(self, "chaos", None) is not None:  # earlier incarnations' counters
            for key, value in self.chaos.carried.items():
                f["metrics"][key] = f["metrics"].get(key, 0.0) + value
        f["rss_end_kib"] = self._rss()
        f["listening"] = probes.listening(self._pids())
        f["daemon_running"] = self._running()
        f["scenario"] = dict(self.scenario.counts)
        f["notifications"] = dict(self.publisher.counts)
        f["chaos"] = self.chaos
        f["consumers"] = {
            "checker": self.watcher.recorder.received,
            "raiser": (self.raiser.recorder.received, self.raiser.raised),
            "staller": (self.staller.recorder.received, self.staller.stalled),
            "resumes": (self.watcher.resumes, self.watcher.relists),
        }
        f["outputs"] = {
            "daemon stderr": list(self.daemon.logs),
            "daemon stdout": [json.dumps(r) for r in self.daemon.records],
            "metrics": [f["metrics_text"], f["healthz_text"]],
            "snapshot command": [reference_text],
            "consumer messages": [
                *self.watcher.recorder.texts,
                *self.raiser.recorder.texts,
                *self.staller.recorder.texts,
            ],
        }

    def _scrape(self) -> tuple[str, dict[probes.Sample, float]]:
        text = probes.fetch(self.metrics_url + "/metrics")
        return text, probes.parse(text)

    def _health(self) -> tuple[int, str]:
        return probes.fetch_status(self.metrics_url + "/healthz")

    def _running(self) -> bool:
        return self.daemon.proc.poll() is None

    def dump_logs(self) -> Path | None:
        """Write the daemon's output, and a copy of its state, to files kept after the run.

        The state (``soak-<seed>-state.db``: the view and the history of
        every change told, with its seq, source and time) is what explains a
        failed check after the run's directory is gone.
        """
        if self.daemon is None:
            return None
        path = Path(tempfile.gettempdir()) / f"soak-{self.seed}-daemon.log"
        path.write_text("\n".join(self.daemon.logs) + "\n")
        state = Path(self.tmp.name) / "soak.state.db"
        if state.exists():
            copy = path.with_name(f"soak-{self.seed}-state.db")
            copy.unlink(missing_ok=True)
            source = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
            with contextlib.closing(source), contextlib.closing(sqlite3.connect(copy)) as dest:
                source.backup(dest)  # consistent while the daemon writes
        return path

    def _teardown(self) -> None:
        for consumer in self.consumers:
            with contextlib.suppress(Exception):
                consumer.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.daemon is not None:
            self.figures["daemon_exit"] = self._stop_daemon()
        if self.cloud is not None:
            self.cloud.stop()
        with contextlib.suppress(Exception):
            self.broker.delete_queues(self._queues())
        self.tmp.cleanup()

    def _stop_daemon(self) -> Any:
        """Stop what the run soaks; its exit code (0: clean)."""
        if self.daemon.proc.poll() is not None:
            return self.daemon.proc.returncode
        return self.daemon.stop(timeout=20)

    def _queues(self) -> list[str]:
        return self.names.queues(socket.gethostname())
