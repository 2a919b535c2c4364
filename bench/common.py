"""Shared helpers: timing, figure records and synthetic ``nova.instance`` entities."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from synchronizer.model import Entity, Ref, Relation, Source

INSTANCE = "nova.instance"
_STATES = ("ACTIVE", "SHUTOFF", "ERROR", "PAUSED")


def median_spread(samples: list[float]) -> tuple[float, list[float]]:
    """The median and ``[min, max]`` of some samples."""
    return statistics.median(samples), [min(samples), max(samples)]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; return (seconds, its result)."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def figure(
    value: float,
    unit: str,
    baseline: float,
    target: str,
    met: bool | None,
    **extra: Any,
) -> dict[str, Any]:
    """One figure's JSON record; ``ratio`` is value / baseline."""
    ratio = value / baseline if baseline else None
    return {
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
        **extra,
    }


def skipped(note: str) -> dict[str, Any]:
    """A figure that was not measured."""
    return {
        "value": None,
        "unit": None,
        "baseline": None,
        "ratio": None,
        "target": None,
        "met": None,
        "note": note,
    }


def instance(rng: random.Random, key: str, hosts: int = 100, version: int = 0) -> Entity:
    """A realistic ``nova.instance`` entity (same shape as the Nova plugin's)."""
    host = f"compute-{rng.randrange(hosts):04d}"
    props = {
        "name": f"vm-{key[:8]}",
        "host": host,
        "node": host + ".example.org",
        "availability_zone": "nova",
        "flavor": rng.choice(("m1.small", "m1.medium", "m1.large")),
        "image": str(uuid.UUID(int=rng.getrandbits(128))),
        "vm_state": "active",
        "task_state": None,
        "user_id": f"{rng.getrandbits(128):032x}",
        "created_at": "2026-01-01T00:00:00Z",
        "metadata": {"role": "web", "version": str(version)},
    }
    return Entity(
        INSTANCE,
        key,
        state=_STATES[version % len(_STATES)],
        project=f"{rng.randrange(10):032x}",
        parent=Ref("nova.host", host),
        relations=(Relation("attached", "cinder.volume", f"vol-{key[:8]}"),),
        properties=props,
        timestamp="2026-01-01T00:00:00.000000Z",
        source=Source("poll", INSTANCE),
    )


def keys(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n)]


def population(n: int, seed: int = 0) -> list[Entity]:
    """``n`` instances with reproducible content."""
    rng = random.Random(seed)
    return [instance(rng, k) for k in keys(n, seed)]


def churn(entities: list[Entity], fraction: float, seed: int = 1) -> tuple[list[Entity], int]:
    """A copy of ``entities`` with ``fraction`` of them updated; return it and how many."""
    rng = random.Random(seed)
    picked = rng.sample(range(len(entities)), max(1, int(len(entities) * fraction)))
    out = list(entities)
    for i in picked:
        e = out[i]
        props = dict(e.properties, metadata={"role": "web", "version": str(seed)})
        out[i] = e.replace(properties=props, state="SHUTOFF" if e.state != "SHUTOFF" else "ACTIVE")
    return out, len(picked)
