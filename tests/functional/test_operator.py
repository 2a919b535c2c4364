"""What a new operator meets first: the commands' output, their errors, systemd, the watch tools."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.functional.conftest import _delete_queues
from tests.helpers.daemon import REPO, Daemon, script

EMBEDDED = REPO / "etc" / "synchronizer"
STATIC_COUNT = 6


@pytest.fixture
def embedded(tmp_path: Path) -> Path:
    """A copy of the embedded default (config + static folder) with a short period."""
    shutil.copytree(EMBEDDED / "static", tmp_path / "static")
    conf = (EMBEDDED / "synchronizer.conf").read_text().replace("period = 2", "period = 0.3")
    (tmp_path / "synchronizer.conf").write_text(conf)
    return tmp_path


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO)


# -- stdout carries data only ------------------------------------------------


def test_daemon_stdout_is_json_lines_only(embedded):
    """Every line the embedded default prints on stdout is JSON; its logs go to stderr."""
    proc = subprocess.Popen(
        [script("synchronizer"), "--config-file", str(embedded / "synchronizer.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = [proc.stdout.readline() for _ in range(STATIC_COUNT)]
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=15)
    records = [json.loads(line) for line in lines + rest.splitlines() if line.strip()]
    assert len(records) >= STATIC_COUNT
    assert {r["action"] for r in records} == {"create"}
    assert "Started worker static" in err
    assert proc.returncode == 0


def test_snapshot_stdout_is_json_lines_only():
    """synchronizer-snapshot prints only JSON lines on stdout; logs go to stderr."""
    out = _run(
        script("synchronizer-snapshot"), "--config-file", str(EMBEDDED / "synchronizer.conf")
    )
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["action"] for line in out.stdout.splitlines()] == [
        "snapshot"
    ] * STATIC_COUNT


def test_closed_stdout_ends_the_daemon_quietly(embedded):
    """A reader that goes away (| head -1) stops the daemon: exit 0, no traceback."""
    proc = subprocess.Popen(
        [script("synchronizer"), "--config-file", str(embedded / "synchronizer.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # the reader exits
    hosts = embedded / "static" / "hosts.yaml"
    hosts.write_text(hosts.read_text().replace("state: up", "state: down"))
    try:
        code = proc.wait(timeout=15)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    assert "Standard output was closed" in err


def test_closed_stdout_ends_the_snapshot_quietly(tmp_path):
    """synchronizer-snapshot | head -1: exit 0, no traceback, no collector reported failed."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps({f"t{i:05d}": "up" for i in range(20_000)}))  # > a pipe's buffer
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\n"
        f"[filecollector]\npath = {things}\n"
    )
    proc = subprocess.Popen(
        [script("synchronizer-snapshot"), "--config-file", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # the reader exits
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    err = proc.stderr.read().decode()
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    assert "Broken pipe" not in err
    assert "failed" not in err


def test_workers_are_named_in_ps(embedded):
    """ps shows each worker as "synchronizer: collector <plugin>", not multiprocessing.spawn."""
    with Daemon(embedded / "synchronizer.conf") as d:
        d.wait_log("Ready", timeout=30)
        titles = []
        for pid in d.worker_pids():
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            titles.append(raw.replace(b"\0", b" ").decode().strip())
    assert titles, "no worker found"
    assert "synchronizer: collector static" in titles
    assert not [t for t in titles if "multiprocessing" in t], titles


# -- configuration errors: one line, exit 2 -----------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "No such file or directory"),
        ("[DEFAULT\nplugins = static\n", "Invalid section"),
        ("[DEFAULT]\nchunk_size = lots\n", "[DEFAULT] chunk_size = lots: invalid literal"),
        ("[DEFAULT]\nmetrics_port = 99999\n", "[DEFAULT] metrics_port = 99999"),
    ],
)
@pytest.mark.parametrize("command", ["synchronizer", "synchronizer-snapshot"])
def test_configuration_error_is_one_line_and_exit_2(tmp_path, command, content, expected):
    """A missing file, an INI syntax error or a bad core value: one line naming it, exit 2."""
    path = tmp_path / "bad.conf"
    if content is not None:
        path.write_text(content)
    out = _run(script(command), "--config-file", str(path))
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert expected in lines[0]
    assert str(path) in lines[0]
    assert "LocationInfo" not in lines[0]


def test_version_and_described_help():
    """--version prints the version; --help says what the daemon is."""
    version = _run(script("synchronizer"), "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == "0.1.0"
    helptext = _run(script("synchronizer"), "--help").stdout
    assert "always-current view of an OpenStack cloud" in " ".join(helptext.split())


# -- systemd -----------------------------------------------------------------


def test_systemd_status_keeps_updating_after_ready(embedded, tmp_path):
    """STATUS= still reaches NOTIFY_SOCKET after READY=1, with the entity count as it changes."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    with Daemon(embedded / "synchronizer.conf", {"NOTIFY_SOCKET": path}) as d:
        messages = [sock.recv(4096)]
        while not messages[-1].startswith(b"READY=1"):
            messages.append(sock.recv(4096))
        d.wait_records(STATIC_COUNT)
        (embedded / "static" / "volumes.yaml").unlink()
        deadline = time.monotonic() + 20
        after: list[bytes] = []
        while time.monotonic() < deadline and not any(b"STATUS=5 entities" in m for m in after):
            after.append(sock.recv(4096))
    sock.close()
    assert any(m.startswith(b"STATUS=5 entities") for m in after), after  # one volume gone


# -- the watch tools -----------------------------------------------------------


def _queues(prefix: str) -> dict[str, int]:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = (line.split("\t") for line in out.splitlines() if "\t" in line)
    return {name: int(n) for name, n in rows if name.startswith(prefix)}


@pytest.mark.broker
def test_watch_with_no_daemon_says_so_and_leaves_no_queue(tmp_path, transport_url, unique):
    """synchronizer-watch with nobody answering: one line naming the topic, exit 1, no queue."""
    conf = tmp_path / "w.conf"
    conf.write_text(
        f"[DEFAULT]\ntransport_url = {transport_url}\nrpc_topic = view_{unique}\n"
        f"message_topic = synchronizer_{unique}\n"
    )
    t0 = time.monotonic()
    watch = subprocess.Popen(
        [script("synchronizer-watch"), "--config-file", str(conf), "--timeout", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    _, stderr = watch.communicate(timeout=30)
    assert time.monotonic() - t0 < 20
    assert watch.returncode == 1
    assert f"no synchronizer daemon answered on RPC topic 'view_{unique}'" in stderr
    assert "Traceback" not in stderr
    # Its own queue (other consumers of the shared broker may have theirs).
    assert _queues(f"synchronizer-client-{socket.gethostname()}-{watch.pid}") == {}


@pytest.fixture
def message_daemon(tmp_path, transport_url, unique):
    """A daemon with the message sink over a one-entity file, and its config path."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"w1": "up", "w2": "down"}))
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks = message\n"
        f"transport_url = {transport_url}\nmessage_topic = synchronizer_{unique}\n"
        f"rpc_topic = view_{unique}\nnotification_pool = pool-{unique}\n"
        f"[filecollector]\npath = {things}\nperiod = 1.0\n"
    )
    with Daemon(conf) as d:
        d.wait_log("complete", timeout=30)
        yield conf


@pytest.mark.broker
def test_watch_once_prints_the_view_and_exits(message_daemon):
    """synchronizer-watch --once prints the daemon's entities as JSON and exits 0."""
    out = _run(script("synchronizer-watch"), "--config-file", str(message_daemon), "--once")
    assert out.returncode == 0, out.stderr
    keys = sorted(json.loads(line)["key"] for line in out.stdout.splitlines())
    assert keys == ["w1", "w2"]


@pytest.mark.broker
def test_show_prints_one_entity_or_says_it_is_not_there(message_daemon):
    """synchronizer-show TYPE KEY prints that entity; an unknown key exits 1 with one line."""
    found = _run(
        script("synchronizer-show"), "--config-file", str(message_daemon), "test.thing", "w2"
    )
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["state"] == "down"
    missing = _run(
        script("synchronizer-show"), "--config-file", str(message_daemon), "test.thing", "w9"
    )
    assert missing.returncode == 1
    assert "has no test.thing 'w9'" in missing.stderr


@pytest.mark.broker
def test_stopped_watchers_leave_no_queue_behind(message_daemon):
    """A watcher stopped by SIGTERM deletes its ephemeral queue: none is left filling."""
    watch = subprocess.Popen(
        [script("synchronizer-watch"), "--config-file", str(message_daemon)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert "snapshot" in watch.stdout.readline()
        assert _queues(f"synchronizer-client-{socket.gethostname()}-{watch.pid}") != {}
    finally:
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(15) == 0
    assert _queues(f"synchronizer-client-{socket.gethostname()}-{watch.pid}") == {}


class _Lines:
    """A command's stdout lines, read on a thread of their own (``next`` waits for one)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30.0) -> dict:
        try:
            return json.loads(self._lines.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None

    def until(self, action: str, timeout: float = 30.0) -> list[dict]:
        """The items up to and with the first of ``action``."""
        items = [self.next(timeout)]
        while items[-1]["action"] != action:
            items.append(self.next(timeout))
        return items

    def quiet(self, seconds: float) -> list[str]:
        """What comes within ``seconds`` (nothing, when the stream is idle)."""
        time.sleep(seconds)
        got = []
        while not self._lines.empty():
            got.append(self._lines.get())
        return got


def _watcher(conf: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [script("synchronizer-watch"), "--config-file", str(conf), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _file_daemon_conf(tmp_path: Path, transport_url: str, unique: str, extra: str = "") -> Path:
    conf = tmp_path / "w.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks = message\n"
        f"transport_url = {transport_url}\nmessage_topic = synchronizer_{unique}\n"
        f"rpc_topic = view_{unique}\nnotification_pool = pool-{unique}\n{extra}"
        f"[filecollector]\npath = {tmp_path / 'things.json'}\nperiod = 0.3\n"
    )
    return conf


def _states(items: list[dict]) -> dict[str, str]:
    """The view a consumer builds from snapshot and change items."""
    view: dict[str, str] = {}
    for item in items:
        if item["action"] in ("snapshot", "create", "update"):
            view[item["key"]] = item["state"]
        elif item["action"] == "delete":
            view.pop(item["key"], None)
    return view


@pytest.mark.broker
def test_watch_relists_when_the_daemon_comes_back_with_another_epoch(
    tmp_path, transport_url, unique
):
    """A daemon restarted on ``state = memory`` starts a new epoch: synchronizer-watch
    prints a relist marker, the new view and ``synced``, then follows the live stream."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"w1": "up", "w2": "down"}))
    conf = _file_daemon_conf(tmp_path, transport_url, unique, "state = memory\n")
    watch = None
    try:
        with Daemon(conf) as d:
            d.wait_log("complete", timeout=30)
            watch = _watcher(conf)
            lines = _Lines(watch)
            assert _states(lines.until("synced")) == {"w1": "up", "w2": "down"}
        things.write_text(json.dumps({"w1": "down", "w3": "up"}))
        with Daemon(conf) as d:
            d.wait_log("complete", timeout=30)
            relist = lines.until("relist")
            assert "epoch" in relist[-1]["reason"]
            after = lines.until("synced")
            things.write_text(json.dumps({"w1": "down", "w3": "down"}))
            after += lines.until("update")
            assert _states(after) == {"w1": "down", "w3": "down"}
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(15) == 0
        assert "Traceback" not in watch.stderr.read()
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            print(watch.stderr.read())  # what the watcher said, for a failure's report
        _delete_queues([f"synchronizer_{unique}.info", f"view_{unique}", f"pool-{unique}"])


def _brief(item: dict) -> tuple:
    return item["key"], item["state"], item["action"], item["seq"]


def _shows(conf: Path, key: str, state: str, timeout: float = 30.0) -> None:
    """Wait until the daemon's view has ``key`` in ``state`` (committed, so published)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = _run(script("synchronizer-show"), "--config-file", str(conf), "test.thing", key)
        if out.returncode == 0 and json.loads(out.stdout)["state"] == state:
            return
        time.sleep(0.3)
    raise AssertionError(f"the daemon never showed {key} {state}")


@pytest.mark.broker
def test_watch_resumes_from_its_position_file_with_what_it_missed(tmp_path, transport_url, unique):
    """--once saves the view's position, the next run follows from it, a third resumes
    where the second stopped: each prints exactly the changes made meanwhile, no
    view; a position from another store relists."""
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"w1": "up", "w2": "down"}))
    conf = _file_daemon_conf(tmp_path, transport_url, unique)
    position = tmp_path / "watch.position"
    watch = None
    try:
        with Daemon(conf) as d:
            d.wait_log("complete", timeout=30)
            once = _run(
                script("synchronizer-watch"),
                *("--config-file", str(conf), "--once", "--position-file", str(position)),
            )
            assert once.returncode == 0, once.stderr
            assert _states([json.loads(line) for line in once.stdout.splitlines()]) == {
                "w1": "up",
                "w2": "down",
            }
            saved = json.loads(position.read_text())
            assert saved["seq"] == 2
            things.write_text(json.dumps({"w1": "down", "w2": "down"}))
            _shows(conf, "w1", "down")
            watch = _watcher(conf, "--position-file", str(position))
            lines = _Lines(watch)
            assert _brief(lines.next()) == ("w1", "down", "update", 3)
            watch.send_signal(signal.SIGTERM)
            assert watch.wait(15) == 0, watch.stderr.read()
            assert json.loads(position.read_text()) == {"epoch": saved["epoch"], "seq": 3}
            things.write_text(json.dumps({"w1": "down", "w2": "up", "w3": "up"}))
            _shows(conf, "w3", "up")
            watch = _watcher(conf, "--position-file", str(position))
            lines = _Lines(watch)
            missed = [_brief(lines.next()), _brief(lines.next())]
            assert missed == [("w2", "up", "update", 4), ("w3", "up", "create", 5)]
            assert lines.quiet(2.0) == []  # no view, no synced: nothing else
            watch.send_signal(signal.SIGTERM)
            assert watch.wait(15) == 0
            assert "Traceback" not in watch.stderr.read()
            assert json.loads(position.read_text()) == {"epoch": saved["epoch"], "seq": 5}
            # A position of another store (another epoch): the watcher relists.
            position.write_text(json.dumps({"epoch": "0000000000000000", "seq": 5}))
            watch = _watcher(conf, "--position-file", str(position))
            lines = _Lines(watch)
            relist = lines.next()
            assert relist["action"] == "relist"
            assert _states(lines.until("synced")) == {"w1": "down", "w2": "up", "w3": "up"}
            watch.send_signal(signal.SIGTERM)
            assert watch.wait(15) == 0
            assert json.loads(position.read_text()) == {"epoch": saved["epoch"], "seq": 5}
    finally:
        if watch is not None and watch.poll() is None:
            watch.kill()
            print(watch.stderr.read())  # what the watcher said, for a failure's report
        _delete_queues([f"synchronizer_{unique}.info", f"view_{unique}", f"pool-{unique}"])


@pytest.mark.broker
def test_the_readme_policy_bounds_the_unconsumed_default_queue(tmp_path, transport_url, unique):
    """The README's policy for <topic>.info (nobody consumes it): its length stays bounded
    while the daemon publishes more changes than the bound."""
    topic = f"synchronizer_{unique}"
    policy = f"synchronizer-default-{unique}"
    # The README's command, for this test's topic and with a bound of 5 instead of 1,000.
    subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "set_policy",
            policy,
            f"^{topic}\\.info$",
            '{"max-length":5,"overflow":"drop-head"}',
            "--apply-to",
            "queues",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    things = tmp_path / "things.json"
    things.write_text(json.dumps({"w1": "s0"}))
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\nsinks = message\n"
        f"transport_url = {transport_url}\nmessage_topic = {topic}\n"
        f"rpc_topic = view_{unique}\nnotification_pool = pool-{unique}\n"
        f"[filecollector]\npath = {things}\nperiod = 0.2\n"
    )
    try:
        with Daemon(conf) as d:
            d.wait_log("complete", timeout=30)
            for i in range(1, 13):
                things.write_text(json.dumps({"w1": f"s{i}"}))
                time.sleep(0.5)
            time.sleep(1.0)
            queues = _queues(f"{topic}.info")
        assert list(queues) == [f"{topic}.info"]
        assert 1 <= queues[f"{topic}.info"] <= 5, queues
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "clear_policy", policy], check=False, capture_output=True
        )
        _delete_queues([f"{topic}.info", f"view_{unique}", f"pool-{unique}"])


# -- the broker away, signals, plugins that cannot run -------------------------


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broker_unreachable_the_daemon_works_is_ready_and_stops_in_time(embedded, tmp_path):
    """Broker down: the jsonl sink still prints, READY comes, one clear line, SIGTERM in < 10 s."""
    port = _refused_port()
    conf = embedded / "synchronizer.conf"
    conf.write_text(
        conf.read_text().replace(
            "sinks = jsonl",
            f"sinks = jsonl, message\ntransport_url = rabbit://guest:pw-123@127.0.0.1:{port}/",
        )
    )
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    d = Daemon(conf, {"NOTIFY_SOCKET": path}).start()
    try:
        d.wait_records(STATIC_COUNT)
        while not sock.recv(4096).startswith(b"READY=1"):
            pass
        d.wait_log(f"The broker at 127.0.0.1:{port} does not answer", timeout=15)
    finally:
        t0 = time.monotonic()
        code = d.stop(timeout=10)
        elapsed = time.monotonic() - t0
        sock.close()
    assert code == 0
    assert elapsed < 10
    assert not [line for line in d.logs if "pw-123" in line]


def test_sigterm_to_the_process_group_restarts_no_worker(embedded):
    """kill -TERM -- -PGID (timeout, docker, systemd): workers are not respawned while stopping."""
    proc = subprocess.Popen(
        [script("synchronizer"), "--config-file", str(embedded / "synchronizer.conf")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    for _ in range(STATIC_COUNT):
        proc.stdout.readline()
    time.sleep(1.0)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 0
    assert err.count("Started worker static") == 1, err
    assert "died" not in err


@pytest.mark.parametrize(
    ("plugins", "section", "expected"),
    [
        ("statik", "", "did you mean 'static'?"),
        ("static", "[static]\nperiod = fast\n", "[static] period = fast: could not convert"),
        (
            "tests.helpers.plugins:RequiresUrl",
            "",
            "[requires_url] url: a value is required and none is set",
        ),
    ],
)
def test_no_plugin_can_load_the_daemon_exits_2_naming_why(tmp_path, plugins, section, expected):
    """No configured plugin can load: a configuration error, exit 2, the reason named."""
    conf = tmp_path / "s.conf"
    conf.write_text(f"[DEFAULT]\nplugins = {plugins}\nsinks = jsonl\n{section}")
    out = subprocess.run(
        [script("synchronizer"), "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert expected in out.stderr
    assert out.stdout == ""


def test_ready_waits_for_the_collectors_that_run_beside_a_mistyped_one(embedded, tmp_path):
    """A mistyped plugin name does not make READY come before the others' first snapshot."""
    conf = embedded / "synchronizer.conf"
    conf.write_text(conf.read_text().replace("plugins = static", "plugins = statik, static"))
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    with Daemon(conf, {"NOTIFY_SOCKET": path}) as d:
        while not sock.recv(4096).startswith(b"READY=1"):
            pass
        ready_with = len(d.records)
        d.wait_log("did you mean 'static'?")
    sock.close()
    # The jsonl sink prints on its own thread: what READY promises is the view.
    assert any("Ready: 6 entities" in line for line in d.logs), d.logs[-20:]
    assert ready_with <= STATIC_COUNT


def test_snapshot_with_types_polls_only_the_collectors_of_those_types(tmp_path):
    """snapshot --type T leaves collectors that declare other types alone (they are not polled)."""
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\nplugins = tests.helpers.plugins:FileCollector\n"
        f"[filecollector]\npath = {tmp_path / 'missing.json'}\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [script("synchronizer-snapshot"), "--config-file", str(conf)]
    polled = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert polled.returncode == 1  # the file is missing: polling it fails
    skipped = subprocess.run(
        [*args, "--type", "nova.instance"], capture_output=True, text=True, timeout=30, env=env
    )
    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout == ""
