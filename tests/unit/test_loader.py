"""Loading plugins by entry-point name and by class path."""

import pytest
from oslo_config import cfg

from synchronizer import opts, plugin_loader
from synchronizer.errors import PluginLoadError, PluginUnavailable
from synchronizer.plugin_base import CollectorPlugin

H = "tests.helpers.plugins"


@pytest.fixture
def conf(tmp_path):
    c = cfg.ConfigOpts()
    opts.register_opts(c)
    c([], project="synchronizer-test")
    return c


def test_entry_point_name(conf):
    """A shipped plugin loads by its entry-point name, options in its group."""
    cls, group = plugin_loader.resolve(conf, "static")
    assert issubclass(cls, CollectorPlugin)
    assert group == "static"
    assert conf.static.period == 5.0


def test_class_path(conf):
    """A plugin loads by class path; its group is its declared name."""
    cls, group = plugin_loader.resolve(conf, f"{H}:FileCollector")
    assert cls.__name__ == "FileCollector"
    assert group == "filecollector"
    assert conf.filecollector.period == 0.2


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        ("no-such-plugin", PluginLoadError, "not an entry point"),
        ("tests.helpers.nowhere:Thing", PluginLoadError, "cannot be imported"),
        (f"{H}:Missing", PluginLoadError, "cannot be imported"),
        (f"{H}:NotAPlugin", PluginLoadError, "neither"),
        (f"{H}:RaisesInInit", PluginLoadError, "broken plugin constructor"),
        (f"{H}:NeverAvailable", PluginUnavailable, "not installed"),
        ("tests.helpers.plugins", PluginLoadError, "package.module:Class"),
    ],
)
def test_broken_plugins_give_clear_errors(conf, name, error, message):
    """Each kind of broken plugin raises an error naming the plugin and the cause."""
    with pytest.raises(error, match=message) as info:
        plugin_loader.instantiate(conf, name)
    assert name in str(info.value)


def test_broken_plugin_does_not_stop_others(conf):
    """Loading a list with broken plugins still loads the good ones."""
    names = ["no-such-plugin", f"{H}:RaisesInInit", f"{H}:FileCollector", "static"]
    loaded, failed = [], []
    for name in names:
        try:
            loaded.append(plugin_loader.resolve(conf, name)[0].__name__)
            plugin_loader.instantiate(conf, name)
        except (PluginLoadError, PluginUnavailable):
            failed.append(name)
    assert "FileCollector" in loaded
    assert "StaticCollector" in loaded
    assert failed[:2] == ["no-such-plugin", f"{H}:RaisesInInit"]


def test_shipped_plugins_are_listed():
    """The config generator sees the shipped plugins."""
    assert "static" in dict(plugin_loader.shipped_plugins())
