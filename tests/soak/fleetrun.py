"""A soak run against a fleet: :class:`~tests.soak.runner.Run` with three members.

The phases, the scenario, the publisher, the consumers and every check are
the single daemon's; what differs is what is soaked (a
:class:`~tests.soak.fleet.Fleet` where the run has a daemon), the chaos
(:class:`~tests.soak.fleetchaos.FleetChaos`), a consumer more (the wire
recorder, see :mod:`tests.soak.consumers`) and the figures the fleet's
checks read (:mod:`tests.soak.fleetchecks`): the ownership samples, the
failovers, the stream as carried and the store's committed history.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import sqlalchemy.exc

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.fleet.partitions import namespace
from tests.soak import probes, setup
from tests.soak.chaos import plan
from tests.soak.consumers import WireRecorder
from tests.soak.fleet import MEMBERS, Fleet, OwnershipSampler
from tests.soak.fleetchaos import FleetChaos
from tests.soak.runner import Run, SoakError, wait_for


def stream_of(etype: str) -> str:
    """The partition (stream) of an entity type: its namespace."""
    return namespace(etype, (etype,))


class FleetRun(Run):
    """One soak run of a fleet of three members (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fleet: Fleet | None = None
        self.sampler: OwnershipSampler | None = None
        self.wire: WireRecorder | None = None
        self.figures["fleet"] = True

    def _start_daemon(self) -> None:
        fleet = Fleet(
            Path(self.tmp.name),
            lambda port: setup.daemon_config(
                self.cloud, self.names, port, self.options, setup.FLEET_CYCLE_TIMEOUT
            ),
        )
        self.fleet = fleet
        try:
            fleet.start()
        except BaseException as exc:  # pytest's skip (no redis-server, no PostgreSQL) too
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise SoakError(f"the fleet's parts did not start: {exc}") from None
        self.daemon = fleet  # type: ignore[assignment]  # logs, count_logs, wait_until, env
        self.conf_path = fleet.members[MEMBERS[0]].config
        self.log(
            f"fleet: members {', '.join(MEMBERS)}; redis {fleet.redis.url}; "
            f"postgresql port {fleet.postgres.port}"
        )
        wait_for("a settled fleet (each partition held by its owner)", fleet.settled, 180)
        wait_for("every member's first snapshots (/healthz 200)", fleet.healthy, 120)
        self.sampler = OwnershipSampler(fleet).start()

    def _start_consumers(self) -> None:
        super()._start_consumers()
        path = Path(self.tmp.name) / "consumer.conf"
        conf = opts.parse(["--config-file", str(path)], setup_logging=False)
        self.wire = WireRecorder(conf, self.names.wire_pool, stream_of)
        self.wire.start()
        self.consumers.append(self.wire)

    @staticmethod
    def _stream_of(etype: str) -> str:
        return stream_of(etype)

    def _make_chaos(self, rng: random.Random) -> FleetChaos:
        return FleetChaos(
            self.cloud, self.fleet, self.broker, self.publisher, rng, setup.CLIENT_TIMEOUT
        )

    def _plan(self, seconds: float) -> list[tuple[float, str]]:
        # A quick run: each kind once (a fleet's episodes take 10-20 s each).
        return plan(self.rng, seconds, self.quick, FleetChaos.kinds, repeats=0)

    def _backlog(self) -> tuple[float, float]:
        _, samples = self.fleet.metrics()
        lag = probes.total(samples, "synchronizer_partition_sink_lag")
        return lag, probes.total(samples, "synchronizer_partition_seq")

    def _scrape(self) -> tuple[str, dict[probes.Sample, float]]:
        texts, samples = self.fleet.metrics()
        return "\n".join(texts), samples

    def _health(self) -> tuple[int, str]:
        answers = {n: self.fleet.health(n) for n in MEMBERS}
        worst = max((a[0] if a else 599) for a in answers.values())
        text = "; ".join(f"{n}: {a[1] if a else 'no answer'}" for n, a in answers.items())
        return worst, text

    def _running(self) -> bool:
        return len(self.fleet.alive()) == len(MEMBERS)

    def _pids(self) -> list[int]:
        return self.fleet.pids()

    def _rss(self) -> dict[str, int]:
        return self.fleet.rss()

    def _collect(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        super()._collect()
        f = self.figures
        self.chaos.finish()
        f["fleet_samples"] = self.sampler.samples if self.sampler else []
        f["wire"] = self.wire
        try:
            f["history"] = self.fleet.history()
            f["streams"], _ = sql.read_views(self.fleet.engine, ())
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise SoakError(f"the shared store could not be read at the end: {exc}") from None
        f["owners"] = self.fleet.owners()
        truth = {(t, k) for t, keys in f["truth"].items() for k in keys}
        odd = sorted(truth ^ f["world"].keys())
        f["store_rows"] = self.fleet.rows(odd) if odd else {}

    def _stop_daemon(self) -> Any:
        if self.sampler is not None:
            self.sampler.stop()
        codes = self.fleet.stop()
        self.figures["member_exits"] = codes
        self.figures["member_stop_seconds"] = self.fleet.stop_seconds
        if all(c == 0 for c in codes.values()):
            return 0
        return {"exits": codes, "seconds to stop": self.fleet.stop_seconds}

    def _queues(self) -> list[str]:
        return [*super()._queues(), *setup.fleet_queues(self.names, list(MEMBERS))]

    def _teardown(self) -> None:
        try:
            super()._teardown()
        finally:
            if self.fleet is not None and self.daemon is None:  # it never came up
                with contextlib.suppress(Exception):
                    self.fleet.stop()
