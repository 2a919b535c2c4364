"""The product as a user installs it: built wheels in a clean virtual environment.

The core and the shipped plugins are built into wheels from a copy of this
checkout and installed, with their dependencies, into a fresh venv, as
``pip install`` of the product would.  The daemon is then started from a
directory holding another project's ``plugins`` package, on its path (a
host application with its own ``plugins``): nothing of the product may be
shadowed by it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOREIGN_PLUGINS = '"""Some other project\'s plugins package."""\nRAISE = 1 / 0\n'


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """Wheels of the core and of the shipped plugins, built from a copy of the sources."""
    src = tmp_path_factory.mktemp("src")
    for name in ("synchronizer", "plugins"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheels")
    pip = (sys.executable, "-m", "pip")
    _run(*pip, "wheel", "-q", "--no-deps", "-w", str(out), str(src), str(src / "plugins"))
    found = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(found) == {"synchronizer", "synchronizer_plugins"}, found
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheels) -> Path:
    """A fresh venv with both wheels and their dependencies installed."""
    root = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", str(root))
    _run(str(root / "bin" / "pip"), "install", "-q", *map(str, wheels.values()))
    return root


def _top_level(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return {name.split("/")[0] for name in z.namelist()}


def test_product_wheel_holds_the_core_only(wheels):
    """The product's wheel has the synchronizer package and no fake cloud, no 'plugins'."""
    assert _top_level(wheels["synchronizer"]) == {"synchronizer", "synchronizer-0.1.0.dist-info"}
    with zipfile.ZipFile(wheels["synchronizer"]) as z:
        assert not [n for n in z.namelist() if "fakecloud" in n]


def test_plugins_wheel_holds_only_its_namespaced_package(wheels):
    """The plugins' wheel installs synchronizer_plugins and nothing at the top level else."""
    assert _top_level(wheels["synchronizer_plugins"]) == {
        "synchronizer_plugins",
        "synchronizer_plugins-0.1.0.dist-info",
    }


@pytest.fixture
def host_dir(tmp_path) -> Path:
    """A host application's directory: its own plugins package, and the embedded default."""
    (tmp_path / "plugins" / "nova").mkdir(parents=True)
    (tmp_path / "plugins" / "__init__.py").write_text(FOREIGN_PLUGINS)
    (tmp_path / "plugins" / "nova" / "__init__.py").write_text(FOREIGN_PLUGINS)
    # The configuration and static files only: no state a local run left beside them.
    shutil.copytree(
        REPO / "etc" / "synchronizer",
        tmp_path / "etc",
        ignore=shutil.ignore_patterns("*.state.db*", "*.lock"),
    )
    return tmp_path


def _host_env(host_dir: Path) -> dict[str, str]:
    # The host's directory first on the path, as its own process (and so the
    # daemon's spawned workers) would have it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return dict(env, PYTHONPATH=str(host_dir), PYTHONUNBUFFERED="1")


def test_every_shipped_plugin_loads_beside_a_foreign_plugins_package(venv, host_dir):
    """Every entry point of the installed plugins loads although 'plugins' is someone else's."""
    code = (
        "import importlib.metadata as md, json\n"
        "from synchronizer.plugin_base import Plugin\n"
        "eps = md.entry_points(group='synchronizer.plugins')\n"
        "print(json.dumps({e.name: issubclass(e.load(), Plugin) for e in eps}))\n"
    )
    out = _run(str(venv / "bin" / "python"), "-c", code, cwd=host_dir, env=_host_env(host_dir))
    loaded = json.loads(out.stdout)
    assert len(loaded) >= 15, loaded
    assert all(loaded.values()), loaded
    assert "static" in loaded
    assert "nova.instance" in loaded


def test_embedded_default_runs_from_the_host_directory(venv, host_dir):
    """The installed daemon, started among a foreign 'plugins', prints the static entities."""
    conf = host_dir / "etc" / "synchronizer.conf"
    expected = {
        json.loads(line)["key"]
        for line in _run(
            str(venv / "bin" / "synchronizer-snapshot"),
            "--config-file",
            str(conf),
            cwd=host_dir,
            env=_host_env(host_dir),
        ).stdout.splitlines()
        if line.startswith("{")
    }
    assert len(expected) >= 3, expected
    proc = subprocess.Popen(
        [str(venv / "bin" / "synchronizer"), "--config-file", str(conf)],
        cwd=host_dir,
        env=_host_env(host_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen: set[str] = set()
        for line in proc.stdout:
            if line.startswith("{"):
                seen.add(json.loads(line)["key"])
            if seen >= expected:
                break
        assert seen >= expected
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    assert "PluginLoadError" not in err
