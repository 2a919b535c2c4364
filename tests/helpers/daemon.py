"""Run the real daemon as a subprocess and read what it prints and logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def script(name: str) -> str:
    """The installed console script ``name`` next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class Daemon:
    """``synchronizer --config-file F`` with stdout JSON lines and stderr logs collected."""

    def __init__(self, config: Path, extra_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.env.update(extra_env or {})
        self.records: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None
        #: Called with every stderr line as it is read (the soak's fleet journal).
        self.on_log: Callable[[str], None] | None = None

    def start(self) -> Daemon:
        self.proc = subprocess.Popen(
            [script("synchronizer"), "--config-file", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()
        return self

    def _read(self, stream: Any, is_json: bool) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                if is_json and line.startswith("{"):
                    self.records.append(json.loads(line))
                else:
                    self.logs.append(line)
                    if self.on_log is not None:
                        self.on_log(line)
                self._cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_records(self, n: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        assert self.wait_until(lambda: len(self.records) >= n, timeout), (
            f"expected {n} records, got {len(self.records)}; logs:\n" + "\n".join(self.logs[-30:])
        )
        return list(self.records)

    def wait_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        ok = self.wait_until(lambda: sum(text in line for line in self.logs) >= count, timeout)
        assert ok, f"log {text!r} x{count} not seen; logs:\n" + "\n".join(self.logs[-30:])

    def count_logs(self, text: str) -> int:
        with self._cond:
            return sum(text in line for line in self.logs)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        pids = [int(p) for p in out.stdout.split()]
        return [p for p in pids if _is_worker(p)]

    def signal(self, signo: int) -> None:
        self.proc.send_signal(signo)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            for pid in self.worker_pids() if self.proc and self.proc.poll() is None else []:
                os.kill(pid, signal.SIGKILL)


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # Workers name themselves ("synchronizer: collector static"); before the
    # title is set they are still multiprocessing's spawn_main.
    return cmdline.startswith(b"synchronizer: ") or b"spawn_main" in cmdline


def settle(seconds: float) -> None:
    """Let a few poll periods pass (used to show that nothing more arrives)."""
    time.sleep(seconds)
