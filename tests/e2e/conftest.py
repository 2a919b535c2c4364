"""The end-to-end tier: a real Keystone, Nova, Neutron, Cinder, Ironic and Heat
from the ``realcloud`` kit, and a real Nagios Core.

The kit (``../shared/realcloud`` beside the checkout, or ``$REALCLOUD_KIT``)
brings up Keystone, Glance, Placement and Nova with the fake virt driver on
127.0.0.1, and with ``REALCLOUD_SERVICES`` (here ``neutron cinder ironic
heat`` unless the environment says otherwise) those four services.  When the
cloud is not answering, the session installs and starts it, and stops it
again at the end; a cloud that was already up is left up (if it runs
without the services, their tests fail under CI and skip elsewhere, naming
what to do).  Nagios (``tests/e2e/nagios/nagios.sh``) is handled the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import REPO

KIT = Path(os.environ.get("REALCLOUD_KIT") or REPO.parent / "shared" / "realcloud")
ENDPOINTS = ("http://127.0.0.1:5000/v3", "http://127.0.0.1:8774/")
SERVICES = os.environ.get("REALCLOUD_SERVICES", "neutron cinder ironic heat")
# The version documents of the optional services (the neutron stub has none).
SERVICE_ENDPOINTS = {
    "neutron": "http://127.0.0.1:9696/",
    "cinder": "http://127.0.0.1:8776/",
    "ironic": "http://127.0.0.1:6385/",
    "heat": "http://127.0.0.1:8004/",
}
NAGIOS = REPO / "tests" / "e2e" / "nagios" / "nagios.sh"


def _answering(endpoints=ENDPOINTS) -> bool:
    for url in endpoints:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                if response.status >= 400:
                    return False
        except urllib.error.HTTPError as exc:
            if exc.code != 300:  # a version list is "multiple choices"
                return False
        except OSError:
            return False
    return True


def services_answering() -> list[str]:
    """The optional services that answer on their ports."""
    return [s for s, url in SERVICE_ENDPOINTS.items() if _answering((url,))]


def missing(what: str) -> None:
    """Skip (or, under CI, fail) a test whose real service is not there."""
    if os.environ.get("CI") == "true":
        pytest.fail(what + " - the e2e tier must not skip under CI")
    pytest.skip(what)


def _kit_env() -> dict[str, str]:
    """The variables ``env.sh`` exports (credentials, transport URL, kit python)."""
    out = subprocess.run(
        ["bash", "-c", f'source "{KIT}/env.sh" && env -0'],
        check=True,
        capture_output=True,
    ).stdout
    env = dict(os.environ)
    for item in out.split(b"\0"):
        name, sep, value = item.decode().partition("=")
        if sep:
            env[name] = value
    return env


class RealCloud:
    """Drives the kit's Nova through its ``boot.py`` (waits for each state)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.python = env["REALCLOUD_PYTHON"]

    def boot_py(self, *args: str, timeout: float = 240) -> list[str]:
        result = subprocess.run(
            [self.python, str(KIT / "boot.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"boot.py {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def boot(self, n: int, prefix: str) -> list[str]:
        return self.boot_py("-n", str(n), "--prefix", prefix)

    def stop(self, *ids: str) -> None:
        self.boot_py("--stop", *ids)

    def start(self, *ids: str) -> None:
        self.boot_py("--start", *ids)

    def delete(self, *ids: str) -> None:
        self.boot_py("--delete", *ids)

    def session(self):
        from keystoneauth1 import session
        from keystoneauth1.identity import v3

        auth = v3.Password(
            auth_url=self.env["OS_AUTH_URL"],
            username=self.env["OS_USERNAME"],
            password=self.env["OS_PASSWORD"],
            project_name=self.env["OS_PROJECT_NAME"],
            user_domain_id=self.env["OS_USER_DOMAIN_ID"],
            project_domain_id=self.env["OS_PROJECT_DOMAIN_ID"],
        )
        return session.Session(auth=auth)

    def compute_max_version(self) -> str:
        with urllib.request.urlopen("http://127.0.0.1:8774/", timeout=10) as response:
            versions = json.load(response)["versions"]
        return next(v["version"] for v in versions if v["id"] == "v2.1")


@pytest.fixture(scope="session")
def realcloud() -> Iterator[RealCloud]:
    if not (KIT / "up.sh").exists():
        reason = f"the realcloud kit is not at {KIT} (set REALCLOUD_KIT)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - the e2e tier must not skip under CI")
        pytest.skip(reason)
    started = False
    if not _answering():
        env = dict(os.environ, REALCLOUD_SERVICES=SERVICES)
        for step in ("install.sh", "up.sh"):
            t0 = time.monotonic()
            subprocess.run([str(KIT / step)], check=True, timeout=1800, env=env)
            print(
                f"realcloud {step} ({SERVICES or 'no optional services'}): "
                f"{time.monotonic() - t0:.0f} s"
            )
        started = True
    cloud = RealCloud(_kit_env())
    cloud.boot_py("--delete-all")
    yield cloud
    try:
        cloud.boot_py("--delete-all")
    finally:
        if started:
            subprocess.run([str(KIT / "down.sh")], check=False, timeout=120)


@pytest.fixture(scope="session")
def services(realcloud: RealCloud):
    """The kit's Neutron, Cinder, Ironic and Heat (fails under CI, else skips, without them)."""
    from tests.e2e.services import Services

    absent = sorted(set(SERVICE_ENDPOINTS) - set(services_answering()))
    if absent:
        missing(
            f"the cloud runs without {' '.join(absent)}: stop it ({KIT}/down.sh) and run "
            f'again, or start it with REALCLOUD_SERVICES="{SERVICES}" {KIT}/up.sh'
        )
    return Services(realcloud.env)


@pytest.fixture(scope="session")
def nagios() -> Iterator[Path]:
    """A real Nagios Core 4 on 127.0.0.1:8098 (installed and started when absent)."""
    url = "http://127.0.0.1:8098/nagios/cgi-bin/statusjson.cgi"
    was_up = _nagios_answering(url)
    # Always from a clean state (under a second): up stops a previous one of
    # ours first, and refuses a port someone else holds.
    for step in ("install", "up"):
        result = subprocess.run(
            ["bash", str(NAGIOS), step], capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            missing(f"nagios.sh {step} failed: {result.stderr[-1500:]}")
    yield NAGIOS
    if not was_up:
        subprocess.run(["bash", str(NAGIOS), "down"], check=False, timeout=60)


def _nagios_answering(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=3)  # noqa: S310 - loopback
    except urllib.error.HTTPError as exc:
        return exc.code == 401  # the CGI behind basic auth
    except OSError:
        return False
    return True
