"""What runs beside the fake cloud in tests and benchmarks: daemons, a Redis, a PostgreSQL.

Shared by the functional tests (``tests/helpers`` wraps it for pytest) and
the benchmarks (``bench/fleet.py``), so that both start the real daemon,
and a fleet's real parts, the same way::

    redis = Redis(workdir).start()
    postgres = Postgres().start()
    text = member_config("m1", cloud, redis.url, postgres.database("b11"), 3,
                         {"nova.instance": {"period": 1}}, sinks="message")
    with Daemon(write_config(workdir / "m1.conf", text)) as member:
        member.wait_log("Partition nova: running")

Nothing here calls pytest: a part that cannot start raises
:class:`Unavailable`, which the tests turn into a skip (or a failure
under CI) and a benchmark into a figure that was not measured.  One
module for what runs beside the cloud, just over 400 lines for that
reason.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "Daemon",
    "Postgres",
    "Redis",
    "ServerProcess",
    "Unavailable",
    "delete_queues",
    "free_port",
    "member_config",
    "reachable",
    "script",
    "service_credentials",
    "write_config",
]


class Unavailable(RuntimeError):
    """A part that this machine cannot run (its binaries are not installed)."""


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


#: Where :func:`free_port` picks from: below the kernel's ephemeral range, so
#: no outgoing connection of any process takes the port between the pick and
#: the server's bind (a port from ``bind(0)`` is in that range).
PORT_RANGE = (20000, 32000)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback TCP port free now, for a server a test or benchmark starts next.

    Chosen at random below the ephemeral range (see :data:`PORT_RANGE`)
    and tried with a bind; the ephemeral range only where there is no room
    below it.
    """
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low() - 1)
    rng = random.SystemRandom()
    for _ in range(200 if high > low else 0):
        port = rng.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- config files -----------------------------------------------------------------


class _Cloud(Protocol):
    """What the config lines need of a cloud (a FakeCloud, or a proxy of one elsewhere)."""

    @property
    def auth_url(self) -> str: ...

    @property
    def credentials(self) -> Any: ...


def service_credentials(
    cloud: _Cloud, password: str | None = None, timeout: float | None = 10
) -> list[str]:
    """The ``[service_credentials]`` section for the fake cloud's one user.

    ``password`` defaults to the cloud's own (pass another to test a wrong
    one); ``timeout=None`` leaves keystoneauth's default.
    """
    creds = cloud.credentials
    lines = [
        "[service_credentials]",
        "auth_type = password",
        f"auth_url = {cloud.auth_url}",
        f"username = {creds.username}",
        f"password = {creds.password if password is None else password}",
        f"project_name = {creds.project_name}",
        f"user_domain_id = {creds.domain_id}",
        f"project_domain_id = {creds.domain_id}",
        f"region_name = {creds.region}",
        "interface = public",
    ]
    if timeout is not None:
        lines.append(f"timeout = {timeout:g}")
    return lines


def member_config(
    member: str,
    cloud: _Cloud,
    backend_url: str,
    database: str,
    heartbeat_timeout: int,
    plugins: Mapping[str, Mapping[str, Any]],
    *,
    credentials_timeout: float = 5,
    coordination: Mapping[str, Any] | None = None,
    **defaults: Any,
) -> str:
    """A fleet member's config: ``[DEFAULT]`` from ``defaults``, each plugin's group.

    ``plugins`` maps a plugin's name to its options (``{"nova.instance":
    {"period": 1}}``); the member runs those plugins against ``cloud``,
    coordinated through ``backend_url`` (and the other ``coordination``
    options, e.g. its ``group``) on the store ``database``.
    """
    lines = ["[DEFAULT]", f"plugins = {', '.join(plugins)}"]
    lines += [f"{k} = {v}" for k, v in defaults.items()]
    lines += [
        "[coordination]",
        f"backend_url = {backend_url}",
        f"heartbeat_timeout = {heartbeat_timeout}",
        f"member_id = {member}",
        *(f"{k} = {v}" for k, v in (coordination or {}).items()),
        "[database]",
        f"connection = {database}",
        *service_credentials(cloud, timeout=credentials_timeout),
    ]
    for name, options in plugins.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def delete_queues(names: list[str], url: str = "amqp://guest:guest@127.0.0.1:5672//") -> None:
    """Delete the broker's queues ``names`` (those never declared are no error)."""
    import kombu

    with kombu.Connection(url) as conn:
        for name in names:
            channel = conn.channel()
            try:
                channel.queue_delete(name)
            except Exception:  # noqa: BLE001, S110 - a queue that was never declared
                pass
            finally:
                channel.close()


# -- the daemon ---------------------------------------------------------------------


def script(name: str) -> str:
    """The installed console script ``name`` next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


class Daemon:
    """``synchronizer --config-file F`` with stdout JSON lines and stderr logs collected.

    ``log_times[i]`` is when ``logs[i]`` was read (``time.monotonic()``).
    Threading: two reader threads append under ``_cond``; the ``wait_*``
    methods block on it.
    """

    def __init__(self, config: Path, extra_env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env.update(extra_env or {})
        self.records: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.log_times: list[float] = []
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
                    self.log_times.append(time.monotonic())
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

    def kill(self) -> None:
        """SIGKILL the workers and the main process (a host that died), and reap it."""
        for pid in [*self.worker_pids(), self.proc.pid]:
            os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)

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


# -- a fleet's real parts ---------------------------------------------------------------


class ServerProcess:
    """A server process of our own (``proc``), to pause (SIGSTOP), resume and stop."""

    proc: subprocess.Popen[bytes] | None = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Redis(ServerProcess):
    """A redis-server of our own on loopback, to stop, pause and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("no redis-server installed (.ci/run installs it)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable(("127.0.0.1", self.port)):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self


class Postgres:
    """A PostgreSQL server of our own (its own data dir and port), to stop and restart.

    Never the shared server on 5432: an outage test stops this one.  Run as
    the ``postgres`` user when running as root (initdb refuses root).
    """

    def __init__(self) -> None:
        self.port = free_port()
        # Under /tmp itself: the postgres user must reach it (pytest's dirs are root's, 0700).
        self.root = Path(tempfile.mkdtemp(prefix="sync-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        self.bin = bins[-1] if bins else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def database(self, name: str) -> str:
        """Create the database ``name`` on this server; its URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        engine.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def _run(self, *args: str) -> None:
        assert self.bin is not None
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        # No pipes: the server pg_ctl starts would hold them open.
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )

    def start(self) -> Postgres:
        if self.bin is None or not (self.bin / "initdb").exists():
            raise Unavailable("no PostgreSQL server binaries (.ci/run installs them)")
        for path in (self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.resume()

    def resume(self) -> Postgres:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"  # commits reach the WAL: a halt loses none
        )
        log = str(self.socket_dir / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "30", "start"
        )
        return self

    def halt(self) -> None:
        """Stop the server at once (clients see their connections refused)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.halt()
        shutil.rmtree(self.root, ignore_errors=True)
