"""Secrets never reach a log line, an error message, a metric or the output.

The real daemon runs with debug logging against the fake cloud, whose
Keystone issues recognisable token ids, with a recognisable Keystone and
Nagios password; its tokens are revoked and one collector is given a wrong
password, so that re-authentication and auth failures are logged too.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer_fakecloud import Credentials
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_fakecloud.testbed import free_port
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon
from tests.soak import probes

PASSWORD = "S3cr3t-test-pw-XYZ"
WRONG_PASSWORD = "Wr0ng-test-pw-ABC"
NAGIOS_PASSWORD = "N4gios-test-pw-QRS"
TOKEN_PREFIX = "gAAAAATestTok"
SECRETS = (PASSWORD, WRONG_PASSWORD, NAGIOS_PASSWORD, "TestTok")


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    fake = FakeCloud(
        credentials=Credentials(password=PASSWORD),
        nagios_password=NAGIOS_PASSWORD,
        token_prefix=TOKEN_PREFIX,
        seed=9,
    )
    with fake:
        fake.populate(servers=5, hosts=2, volumes=1, nagios_services=2)
        yield fake


def _conf(cloud: FakeCloud, folder: Path, port: int) -> Path:
    creds = "\n".join(service_credentials(cloud, PASSWORD, timeout=None)) + "\n"
    conf = folder / "secrets.conf"
    conf.write_text(
        "[DEFAULT]\ndebug = true\n"
        # keystoneauth and urllib3 log requests and headers at debug level.
        "default_log_levels = keystoneauth=DEBUG, urllib3=DEBUG, requests=DEBUG, "
        "oslo_messaging=DEBUG, stevedore=WARN\n"
        "plugins = nova.instance, cinder.volume, nagios.service\nsinks = jsonl, log\n"
        f"metrics_port = {port}\n"
        f"{creds}"
        "[nova.instance]\nperiod = 0.5\nmax_backoff = 1\n"
        "[cinder.volume]\nperiod = 0.5\nmax_backoff = 1\n"
        f"[nagios.service]\nurl = {cloud.nagios_url}\nusername = nagiosadmin\n"
        f"password = {WRONG_PASSWORD}\nperiod = 0.5\nmax_backoff = 1\n"
    )
    return conf


def _unhealthy(base: str, scraped: list[str]) -> bool:
    """Whether /healthz answers 503; its body is kept with what was scraped."""
    try:
        probes.fetch(base + "/healthz")
    except urllib.error.HTTPError as failed:
        scraped.append(failed.read().decode())
        return failed.code == 503
    return False


def test_no_secret_in_logs_output_or_metrics(cloud: FakeCloud, tmp_path: Path):
    """Debug logs, auth failures, re-authentication, records and metrics carry no secret."""
    token, _ = cloud.tokens.issue("someone", None, ("password",))
    assert token.startswith(TOKEN_PREFIX)  # so a leaked token id would be seen
    port = free_port()
    with Daemon(_conf(cloud, tmp_path, port)) as d:
        d.wait_records(6, timeout=60)
        issued = cloud.tokens_issued
        cloud.revoke_tokens()
        assert d.wait_until(lambda: cloud.tokens_issued > issued, 30)
        cloud.update("servers", cloud.keys("servers")[0], status="SHUTOFF")
        d.wait_records(7, timeout=30)
        d.wait_log("nagios.service", timeout=30)
        assert d.wait_until(lambda: any("401" in line for line in d.logs), 30)
        base = f"http://127.0.0.1:{port}"
        scraped = [probes.fetch(base + "/metrics")]
        # Nagios refuses the password: retried (a 401 may be fixed without a
        # restart), so /healthz turns 503 once three periods pass without a
        # complete cycle.
        deadline = time.monotonic() + 60
        while not _unhealthy(base, scraped):
            assert time.monotonic() < deadline, "healthz never said 503"
            time.sleep(0.5)
        texts = {
            "logs": list(d.logs),
            "records": [str(r) for r in d.records],
            "metrics": scraped,
        }
    # Request logging did run, so the absence of secrets below means something.
    assert any("keystoneauth" in line and "DEBUG" in line for line in texts["logs"])
    leaks = [
        (where, secret)
        for where, lines in texts.items()
        for secret in SECRETS
        if any(secret in line for line in lines)
    ]
    assert leaks == []


def test_daemon_listens_on_loopback_only(cloud: FakeCloud, tmp_path: Path):
    """With the metrics port on and default hosts, every listening socket is loopback."""
    with Daemon(_conf(cloud, tmp_path, free_port())) as d:
        d.wait_records(6, timeout=60)
        pids = [d.proc.pid, *d.worker_pids()]
        sockets = probes.listening(pids)
    assert sockets, "the metrics endpoint should be listening"
    assert [a for a, _ in sockets if not probes.is_loopback(a)] == []
