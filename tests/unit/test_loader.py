"""Loading plugins by entry-point name and by class path."""

import pytest
from oslo_config import cfg

from synchronizer import opts, plugin_loader
from synchronizer.errors import PluginLoadError, PluginUnavailable
from synchronizer.plugin_base import CollectorPlugin, NotificationPlugin, Plugin
from synchronizer.wire import PluginState

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


class Failures:
    """The failure callback: records every (name, state, reason) it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, PluginState, str]] = []

    def __call__(self, name: str, state: PluginState, reason: str) -> None:
        self.calls.append((name, state, reason))

    def states(self) -> dict[str, PluginState]:
        return {name: state for name, state, _ in self.calls}


def test_broken_plugin_does_not_stop_others(conf):
    """Loading a list with broken plugins reports each of them and still loads the good ones."""
    names = ["no-such-plugin", f"{H}:RaisesInInit", f"{H}:FileCollector", "static"]
    failures = Failures()
    loaded = plugin_loader.load(conf, names, CollectorPlugin, failures)
    assert list(loaded) == [f"{H}:FileCollector"]
    assert type(loaded[f"{H}:FileCollector"]).__name__ == "FileCollector"
    assert failures.states() == {
        "no-such-plugin": PluginState.FAILED,
        f"{H}:RaisesInInit": PluginState.FAILED,
        "static": PluginState.UNAVAILABLE,  # its directory is not there
    }


@pytest.mark.parametrize(
    ("name", "state", "reason"),
    [
        ("no-such-plugin", PluginState.FAILED, "not an entry point"),
        (f"{H}:Missing", PluginState.FAILED, "cannot be imported"),
        (f"{H}:NotAPlugin", PluginState.FAILED, "neither"),
        (f"{H}:RaisesInInit", PluginState.FAILED, "broken plugin constructor"),
        (f"{H}:NeverAvailable", PluginState.UNAVAILABLE, "not installed"),
        (f"{H}:ThingNotifications", PluginState.FAILED, "is not a CollectorPlugin"),
    ],
)
def test_each_failure_is_reported_with_its_state_and_reason(conf, name, state, reason):
    """A plugin that cannot run is left out and reported once, with its state and a reason."""
    failures = Failures()
    assert plugin_loader.load(conf, [name], CollectorPlugin, failures) == {}
    ((reported, got, why),) = failures.calls
    assert (reported, got) == (name, state)
    assert reason in why
    assert name in why


def test_plugins_of_another_kind_can_be_skipped_silently(conf):
    """With skip_other_kinds a collector in a notification tool's list is neither loaded nor
    reported."""
    failures = Failures()
    names = ["static", f"{H}:ThingNotifications"]
    loaded = plugin_loader.load(conf, names, NotificationPlugin, failures, skip_other_kinds=True)
    assert list(loaded) == [f"{H}:ThingNotifications"]
    assert isinstance(loaded[f"{H}:ThingNotifications"], NotificationPlugin)
    assert failures.calls == []


def test_without_invoke_only_classes_are_loaded(conf):
    """Without invoke no plugin is built, so neither a constructor nor available() runs."""
    failures = Failures()
    names = [f"{H}:RaisesInInit", f"{H}:NeverAvailable", "no-such-plugin", "static"]
    loaded = plugin_loader.load(conf, names, Plugin, failures, invoke=False)
    assert {name: cls.__name__ for name, cls in loaded.items()} == {
        f"{H}:RaisesInInit": "RaisesInInit",
        f"{H}:NeverAvailable": "NeverAvailable",
        "static": "StaticCollector",
    }
    assert failures.states() == {"no-such-plugin": PluginState.FAILED}


def test_a_name_given_twice_is_loaded_and_reported_once(conf):
    """A repeated name gives one plugin, and a repeated broken one one report."""
    failures = Failures()
    good = f"{H}:FileCollector"
    names = [good, "no-such-plugin", good, "no-such-plugin"]
    assert list(plugin_loader.load(conf, names, CollectorPlugin, failures)) == [good]
    assert [name for name, _, _ in failures.calls] == ["no-such-plugin"]


def test_a_malformed_option_value_fails_that_plugin_only(tmp_path):
    """A plugin whose group holds a value of the wrong type fails to load; the others load."""
    path = tmp_path / "s.conf"
    path.write_text("[filecollector]\nperiod = often\n")
    c = cfg.ConfigOpts()
    opts.register_opts(c)
    c(["--config-file", str(path)], project="synchronizer-test")
    failures = Failures()
    loaded = plugin_loader.load(c, [f"{H}:FileCollector", "static"], Plugin, failures, invoke=False)
    assert list(loaded) == ["static"]
    ((name, state, reason),) = failures.calls
    assert (name, state) == (f"{H}:FileCollector", PluginState.FAILED)
    assert "[filecollector]" in reason


def test_shipped_plugins_are_listed():
    """The config generator sees the shipped plugins."""
    assert "static" in dict(plugin_loader.shipped_plugins())
