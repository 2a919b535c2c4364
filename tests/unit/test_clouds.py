"""Several clouds: options, validation, plugin names and groups, the entities' namespace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from synchronizer import clouds, cmd, fingerprint, opts, plugin_loader
from synchronizer.deletes import Resync
from synchronizer.dispatch.codec import EntryCodec
from synchronizer.dispatch.durable import SQLiteStore, read_baseline
from synchronizer.errors import ConfigError, PluginLoadError
from synchronizer.fleet.partitions import group
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source
from synchronizer.service.library import Synchronizer

TWO_CLOUDS = """\
[DEFAULT]
clouds = east, west
plugins = static
state = memory
[cloud:east]
credentials = east_credentials
region_name = East
plugins = static, nova.instance
[east_credentials]
auth_type = password
[cloud:west]
credentials = west_credentials
plugins = static
[west_credentials]
auth_type = password
"""


def parse(tmp_path: Path, text: str):
    path = tmp_path / "s.conf"
    path.write_text(text)
    return cmd.parse(["--config-file", str(path)], prog="synchronizer", description="")


def entity(**changes) -> Entity:
    base = Entity(
        "nova.instance",
        "7f5a0000-0000-4000-8000-000000000001",
        state="ACTIVE",
        project="p1",
        parent=Ref("nova.host", "compute-1"),
        relations=(
            Relation("attached", "cinder.volume", "v2"),
            Relation("attached", "cinder.volume", "v1"),
        ),
        properties={"name": "web-1", "flavor": "m1.small"},
        timestamp="2026-11-23T04:48:02.523630Z",
        source=Source("poll", "nova.instance"),
    )
    return base.replace(**changes)


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[DEFAULT]\nclouds = east\n",
            "[DEFAULT] clouds names 'east' but there is no [cloud:east] section",
        ),
        (
            "[DEFAULT]\nclouds = east\n[cloud:east]\nplugins = static\n",
            "[cloud:east] credentials: a value is required and none is set",
        ),
        (
            "[DEFAULT]\nclouds = east\n[cloud:east]\ncredentials = creds\nplugins = static\n",
            "[cloud:east] credentials = creds: there is no [creds] section",
        ),
        (
            "[DEFAULT]\nclouds = east\n[cloud:east]\ncredentials = c\n[c]\nauth_type = password\n",
            "[cloud:east] plugins: the cloud lists no plugin",
        ),
        ("[DEFAULT]\nclouds = e.ast\n", "[DEFAULT] clouds: 'e.ast' is not a cloud name"),
        ("[DEFAULT]\nclouds = east, east\n", "[DEFAULT] clouds: 'east' is listed twice"),
    ],
)
def test_a_misconfigured_cloud_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    """A cloud without its section, credentials or plugins: one line naming the section, exit 2."""
    with pytest.raises(SystemExit) as info:
        parse(tmp_path, text)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"synchronizer: configuration error: {tmp_path / 's.conf'}: ")
    assert message in err


def test_a_configuration_without_clouds_is_as_before(tmp_path):
    """No [DEFAULT] clouds: the plugin names are [DEFAULT] plugins, unqualified."""
    conf = parse(tmp_path, "[DEFAULT]\nplugins = static, nova.instance\n")
    assert clouds.validate(conf) == []
    assert clouds.plugin_names(conf) == ["static", "nova.instance"]


def test_every_clouds_plugins_run_under_qualified_names(tmp_path):
    """[DEFAULT] plugins as they are, then each cloud's, qualified, in the order named."""
    conf = parse(tmp_path, TWO_CLOUDS)
    east, west = clouds.validate(conf)
    assert (east.name, east.credentials, east.region_name) == ("east", "east_credentials", "East")
    assert west.region_name is None
    assert clouds.plugin_names(conf) == [
        "static",
        "east/static",
        "east/nova.instance",
        "west/static",
    ]


def test_two_clouds_notifications_on_one_bus_and_exchange_are_refused(tmp_path):
    """Two clouds' notification plugins that would take the same notifications: ConfigError."""
    text = TWO_CLOUDS.replace("plugins = static\n[west", "plugins = nova.notifications\n[west")
    text = text.replace("static, nova.instance", "nova.notifications")
    text += "[nova.notifications]\ntopics = versioned_notifications\n"
    conf = parse(tmp_path, text)
    with pytest.raises(ConfigError, match="cloud west and of cloud east would take the same"):
        Synchronizer(conf)._specs()
    # Each on an exchange of its own: accepted, one worker per cloud in a pool of its own.
    text += "[west/nova.notifications]\nexchange = nova_west\n"
    specs = Synchronizer(parse(tmp_path, text))._specs()
    assert {s.name for s in specs} >= {"east/notifications", "west/notifications"}


# -- plugin names and groups ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("nova.instance", (None, "nova.instance")),
        ("east/nova.instance", ("east", "nova.instance")),
        ("east/pkg.mod:Class", ("east", "pkg.mod:Class")),
        ("pkg.mod:Class", (None, "pkg.mod:Class")),
        ("e.ast/x", (None, "e.ast/x")),  # no cloud has a dot
    ],
)
def test_split_and_qualify(name, parts):
    """A qualified name is <cloud>/<plugin>; qualify undoes split."""
    assert clouds.split(name) == parts
    if parts[0] is not None:
        assert clouds.qualify(*parts) == name


def test_a_clouds_plugin_group_inherits_the_plugins_group(tmp_path):
    """[east/static] defaults to [static]'s values, its own win; credentials are the cloud's."""
    text = TWO_CLOUDS + f"[static]\nperiod = 7\ndirectory = {tmp_path}\n[west/static]\nperiod = 9\n"
    text += "[east/nova.instance]\npage_size = 50\n"
    conf = parse(tmp_path, text)
    for name, period in (("static", 7.0), ("east/static", 7.0), ("west/static", 9.0)):
        _cls, grp = plugin_loader.resolve(conf, name)
        assert grp == name
        assert conf[grp].period == period
    plugin = plugin_loader.instantiate(conf, "west/static")
    assert plugin.cloud == "west"
    assert plugin.options.directory == str(tmp_path)
    assert plugin.source == Source("poll", "west/static")
    _, grp = plugin_loader.resolve(conf, "east/nova.instance")
    assert conf[grp].credentials == "east_credentials"
    assert conf[grp].page_size == 50
    assert conf["nova.instance"].credentials == "service_credentials"


def test_a_clouds_own_credentials_group_wins(tmp_path):
    """A cloud's plugin may name another credentials group (Ironic's system scope)."""
    text = TWO_CLOUDS + "[east/nova.instance]\ncredentials = east_system\n"
    conf = parse(tmp_path, text)
    _, grp = plugin_loader.resolve(conf, "east/nova.instance")
    assert conf[grp].credentials == "east_system"


def test_a_plugin_of_an_unknown_cloud_fails_to_load(tmp_path):
    """east/static without east in [DEFAULT] clouds fails, naming the cloud."""
    conf = parse(tmp_path, "[DEFAULT]\nplugins = static\n")
    with pytest.raises(PluginLoadError, match="cloud 'east' is not in"):
        plugin_loader.resolve(conf, "east/static")


def test_partitions_are_per_cloud_and_service():
    """Each (cloud, namespace) is its own partition; plugins of no cloud keep theirs."""

    class Instances:
        entity_types = ("nova.instance",)

    class Notifications:
        entity_types = ("nova.instance", "nova.host")

    class Volumes:
        entity_types = ("cinder.volume",)

    names = {
        "nova.instance": Instances,
        "east/nova.instance": Instances,
        "east/nova.notifications": Notifications,
        "west/nova.instance": Instances,
        "west/cinder.volume": Volumes,
    }
    found = {p.name: p.plugins for p in group(names)}
    assert found == {
        "nova": ("nova.instance",),
        "east.nova": ("east/nova.instance", "east/nova.notifications"),
        "west.nova": ("west/nova.instance",),
        "west.cinder": ("west/cinder.volume",),
    }


# -- the entities' namespace ---------------------------------------------------------------


def test_a_clouds_entity_is_namespaced_with_its_parent_and_relations():
    """Key, parent and relations get <cloud>/; project, properties and source do not."""
    e = entity()
    n = clouds.namespaced(e, "east")
    assert (n.cloud, n.key) == ("east", f"east/{e.key}")
    assert n.parent == Ref("nova.host", "east/compute-1")
    assert [r.key for r in n.relations] == ["east/v2", "east/v1"]
    assert (n.project, n.properties, n.source, n.timestamp, n.state) == (
        e.project,
        e.properties,
        e.source,
        e.timestamp,
        e.state,
    )
    assert clouds.namespaced(n, "east") is n
    assert clouds.local_key(n) == clouds.local_key(e) == e.key
    assert clouds.namespaced(e, "west").key != n.key


# Computed by the code before clouds (main at 643ac53) for entity(): unchanged since.
TODAY_FINGERPRINT = 17990781393279810628
TODAY_JSON = (
    b'{"type":"nova.instance","key":"7f5a0000-0000-4000-8000-000000000001",'
    b'"timestamp":"2026-11-23T04:48:02.523630Z","state":"ACTIVE","project":"p1",'
    b'"parent":{"type":"nova.host","key":"compute-1"},"relations":[{"relation":"attached",'
    b'"type":"cinder.volume","key":"v2"},{"relation":"attached","type":"cinder.volume",'
    b'"key":"v1"}],"source":{"kind":"poll","plugin":"nova.instance"},'
    b'"properties":{"name":"web-1","flavor":"m1.small"},"action":"create",'
    b'"final_state_unknown":false,"seq":3}'
)


def test_an_entity_of_no_cloud_is_byte_identical_to_before_clouds():
    """No cloud: the same fingerprint and the same JSON as before, with no cloud field."""
    e = entity()
    assert fingerprint.of(e) == TODAY_FINGERPRINT
    assert Change(Action.CREATE, e, TODAY_FINGERPRINT, seq=3).to_json() == TODAY_JSON
    assert "cloud" not in e.to_dict()


def test_a_clouds_entity_carries_its_cloud_in_json_and_fingerprint():
    """The cloud is in the JSON and the fingerprint, and survives every encoding."""
    e = clouds.namespaced(entity(), "east")
    assert e.to_dict()["cloud"] == "east"
    assert fingerprint.of(e) != fingerprint.of(e.replace(cloud=None))
    change = Change(Action.UPDATE, e, fingerprint.of(e), seq=9)
    assert Change.from_dict(orjson.loads(change.to_json())).entity == e
    codec = EntryCodec()
    assert codec.decode(e.type, e.key, codec.encode(change)) == change
    with pytest.raises(ValueError, match="cloud"):
        Entity.from_dict({**e.to_dict(), "cloud": 3})


def test_a_resync_owns_its_clouds_entities_only():
    """east/nova.instance's resync sweeps east's instances, never west's nor cloud-less ones."""
    resync = Resync("east/nova.instance", frozenset({"nova.instance"}), "2027", cloud="east")
    e = entity()
    assert resync.owns(clouds.namespaced(e, "east"))
    assert not resync.owns(clouds.namespaced(e, "west"))
    assert not resync.owns(e)
    assert Resync("nova.instance", frozenset({"nova.instance"}), "2027").owns(e)


# -- the stores -----------------------------------------------------------------------------


def _told(e: Entity, seq: int) -> Change:
    return Change(Action.CREATE, e, fingerprint.of(e), seq=seq)


def test_the_sqlite_view_has_a_cloud_column_and_baselines_per_cloud(tmp_path):
    """SQL readers filter on cloud; a worker's baseline holds its own cloud's entities only."""
    path = str(tmp_path / "state.db")
    store = SQLiteStore(path)
    plain, east, west = (
        entity(),
        clouds.namespaced(entity(), "east"),
        clouds.namespaced(entity(), "west"),
    )
    table = store.table("nova.instance")
    for seq, e in enumerate((plain, east, west), 1):
        table[e.key] = _told(e, seq)
    store.commit([], 3)
    store.close()
    db = sqlite3.connect(path)
    rows = db.execute("SELECT cloud, key FROM live_entities ORDER BY seq").fetchall()
    assert rows == [(None, plain.key), ("east", east.key), ("west", west.key)]
    db.close()
    for cloud, e in ((None, plain), ("east", east), ("west", west)):
        plugin = clouds.qualify(cloud, "nova.instance")
        baseline = read_baseline(path, plugin, ["nova.instance"], cloud=cloud)
        assert baseline == {"nova.instance": {e.key: fingerprint.of(e)}}


def test_the_fleet_store_has_a_cloud_column(tmp_path):
    """sync_entities gets the entity's cloud; a database from before is given the column."""
    sa = pytest.importorskip("sqlalchemy")
    from synchronizer.dispatch import sql

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as it was before clouds
        conn.execute(
            sa.text(
                "CREATE TABLE sync_entities (id INTEGER PRIMARY KEY, partition VARCHAR(255)"
                " NOT NULL, type VARCHAR(128) NOT NULL, key VARCHAR(255) NOT NULL, seq BIGINT"
                " NOT NULL, action VARCHAR(16) NOT NULL, fingerprint BIGINT NOT NULL, observed"
                " VARCHAR(40) NOT NULL, doc TEXT)"
            )
        )
    sql.create_tables_of(engine)
    store = sql.SQLStore(engine, "east.nova", "m1")
    store.claim()
    east = clouds.namespaced(entity(), "east")
    store.table(east.type)[east.key] = _told(east, 1)
    store.commit([_told(east, 1)], 1)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT cloud, key FROM sync_entities")).fetchall()
    assert [tuple(r) for r in rows] == [("east", east.key)]
    store.close()
    engine.dispose()


def test_options_are_in_the_generator():
    """The sample config documents [DEFAULT] clouds and a [cloud:name] section."""
    groups = dict(opts.list_opts())
    assert "clouds" in {o.dest for o in groups["DEFAULT"]}
    assert {o.dest for o in groups["cloud:name"]} == {
        "credentials",
        "region_name",
        "plugins",
        "transport_url",
    }


def test_a_fleet_refuses_two_clouds_notifications_on_one_bus_too(tmp_path):
    """A fleet member checks the clouds' buses as one daemon does (its pools differ anyway)."""
    pytest.importorskip("tooz")
    from synchronizer.fleet.member import Member

    text = TWO_CLOUDS.replace("plugins = static\n[west", "plugins = nova.notifications\n[west")
    text = text.replace("static, nova.instance", "nova.notifications")
    text += "[nova.notifications]\ntopics = versioned_notifications\n"
    text += f"[coordination]\nbackend_url = file://{tmp_path}/coord\n"
    text += f"[database]\nconnection = sqlite:///{tmp_path}/fleet.db\n"
    with pytest.raises(ConfigError, match="cloud west and of cloud east would take the same"):
        Member(parse(tmp_path, text))
