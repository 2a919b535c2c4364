"""Importing the synchronizer has no effect on the host process."""

import json
import pkgutil
import subprocess
import sys

import pytest

import synchronizer

DAEMON_STACK = ("oslo_messaging", "oslo_service", "eventlet")


def _loaded_after(statement: str) -> list[str]:
    """Top-level packages a fresh interpreter has loaded after ``statement``."""
    report = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    code = f"{statement}\nimport json, sys\n{report}"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize(
    "module", ["synchronizer.model", "synchronizer.fingerprint", "synchronizer.diff"]
)
def test_pure_core_imports_nothing_of_oslo(module):
    """The model and the pure core load no oslo library at all, nor eventlet."""
    loaded = _loaded_after(f"import {module}")
    assert [m for m in loaded if m.startswith("oslo_") or m == "eventlet"] == []


def _every_module() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(synchronizer.__path__, "synchronizer.")
        if info.name != "synchronizer.__main__"
    )


def test_no_module_loads_the_daemon_stack():
    """Importing every module loads neither oslo.messaging, oslo.service nor eventlet."""
    imports = "\n".join(f"import {m}" for m in _every_module())
    loaded = _loaded_after(f"import synchronizer\n{imports}")
    assert [m for m in loaded if m in DAEMON_STACK] == []


def test_host_application_may_choose_eventlet_after_importing_everything():
    """No oslo.service backend is chosen at import: a host picking eventlet afterwards succeeds."""
    imports = "\n".join(f"import {m}" for m in _every_module())
    statement = (
        f"import warnings\nwarnings.simplefilter('ignore')\n{imports}\n"
        "from synchronizer import Synchronizer, Entity, opts\n"
        "from oslo_service import backend\n"
        "backend.init_backend(backend.BackendType.EVENTLET)\n"
        "assert backend.get_backend_type() is backend.BackendType.EVENTLET"
    )
    _loaded_after(statement)


def test_public_names_resolve():
    """Every name of ``synchronizer.__all__`` resolves to the object of its module."""
    from synchronizer.model import Entity
    from synchronizer.service.library import Synchronizer

    assert synchronizer.Entity is Entity
    assert synchronizer.Synchronizer is Synchronizer
    assert all(getattr(synchronizer, name) is not None for name in synchronizer.__all__)
    with pytest.raises(AttributeError):
        _ = synchronizer.NoSuchName
