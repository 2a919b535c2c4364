"""Run the real daemon as a subprocess and read what it prints and logs.

The runner is :class:`synchronizer_fakecloud.testbed.Daemon` (the
benchmarks use it too); the tests' daemon also imports this checkout
(``PYTHONPATH``), for the test plugins under ``tests/helpers``.
"""

from __future__ import annotations

import time
from pathlib import Path

from synchronizer_fakecloud import testbed
from synchronizer_fakecloud.testbed import script

__all__ = ["REPO", "Daemon", "script", "settle"]

REPO = Path(__file__).resolve().parents[2]


class Daemon(testbed.Daemon):
    """``synchronizer --config-file F`` with this checkout importable (see the module)."""

    def __init__(self, config: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(config, {"PYTHONPATH": str(REPO), **(extra_env or {})})


def settle(seconds: float) -> None:
    """Let a few poll periods pass (used to show that nothing more arrives)."""
    time.sleep(seconds)
