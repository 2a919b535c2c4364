"""The shapes and notification plugins load no HTTP client stack."""

import json
import subprocess
import sys

import pytest

import synchronizer_plugins.nova
from synchronizer_plugins.nova import collector

HTTP_STACK = ("novaclient", "keystoneauth1", "requests")
SERVICES = ("nova", "cinder", "neutron", "ironic", "heat")
PURE = (
    "synchronizer_plugins.fields",
    "synchronizer_plugins.paging",
    "synchronizer_plugins.notification",
    *(f"synchronizer_plugins.{service}.shapes" for service in SERVICES),
    *(f"synchronizer_plugins.{service}.notifications" for service in SERVICES),
)


def _http_stack_after_each(modules: tuple[str, ...]) -> dict[str, list[str]]:
    """In a fresh interpreter: the HTTP packages loaded once each module is imported, in order."""
    code = (
        "import importlib, json, sys\n"
        "report = {}\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "    loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"    report[name] = sorted(loaded & {set(HTTP_STACK)!r})\n"
        "print(json.dumps(report))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_shapes_and_notifications_load_no_http_client():
    """Importing every shapes and notifications module loads no novaclient, keystoneauth1, requests.

    The collector module, imported last in the same interpreter, does load
    them: the check sees the stack when it is there.
    """
    report = _http_stack_after_each((*PURE, "synchronizer_plugins.nova.collector"))
    assert {name: loaded for name, loaded in report.items() if loaded and name in PURE} == {}
    assert report["synchronizer_plugins.nova.collector"] == sorted(HTTP_STACK)


@pytest.mark.parametrize("name", ["NovaCollector", "translate_error", "PLUGIN_MAX_MICROVERSION"])
def test_the_nova_package_still_answers_the_collector_names(name):
    """The names the nova package exported resolve, on first use, to the collector module's."""
    assert getattr(synchronizer_plugins.nova, name) is getattr(collector, name)


def test_the_nova_package_refuses_unknown_names():
    """A name the package never had is an AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = synchronizer_plugins.nova.no_such_name
