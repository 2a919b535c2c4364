"""The entity reference: EntityDoc's contract, the generator, and doc/entities.md kept current."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import ClassVar

import pytest

from synchronizer import plugin_loader
from synchronizer.cmd import entity_docs
from synchronizer.model import Entity
from synchronizer.plugin_base import (
    CollectorPlugin,
    EntityDoc,
    Notification,
    NotificationPlugin,
    RelationDoc,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "doc" / "entities.md"
SHIPPED = list(plugin_loader.shipped_plugins())

RACK = EntityDoc(
    type="dc.rack",
    summary="A rack | of the data centre.",
    key="rack id",
    state="its power feed",
    states=("powered", "dark"),
    parent="dc.room",
    parent_meaning="the room it stands in",
    relations=(("feeds", "dc.pdu"),),
    properties={"row": "the row", "temperature": "inlet temperature"},
    volatile=frozenset({"temperature"}),
)


class Racks(CollectorPlugin):
    """Racks from the DCIM."""

    entity_types: ClassVar[tuple[str, ...]] = ("dc.rack", "dc.pdu")
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (RACK,)

    def list_all(self) -> list[Entity]:
        return []


class RackEvents(NotificationPlugin):
    """Rack events from the DCIM's bus."""

    entity_types: ClassVar[tuple[str, ...]] = ("dc.rack",)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (RACK,)

    def convert(self, notification: Notification) -> list:
        return []


class Anything(CollectorPlugin):
    """Whatever its files say.

    More detail that the reference leaves out.
    """

    def list_all(self) -> list[Entity]:
        return []


def _plugin(base: type, types: tuple[str, ...], docs: tuple[EntityDoc, ...]) -> type:
    return type("P", (base,), {"entity_types": types, "entity_docs": docs})


# -- EntityDoc ------------------------------------------------------------------


def test_entity_doc_normalises_relations_and_freezes_properties():
    """Relations given as tuples become RelationDocs and the properties are read-only."""
    assert RACK.relations == (RelationDoc("feeds", "dc.pdu", ""),)
    with pytest.raises(TypeError):
        RACK.properties["row"] = "changed"  # type: ignore[index]
    assert hash(RACK) == hash(EntityDoc(**{f: getattr(RACK, f) for f in RACK.__slots__}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": ""}, "type and key"),
        ({"states": ("up", "up")}, "listed twice"),
        ({"volatile": frozenset({"humidity"})}, "humidity"),
    ],
)
def test_entity_doc_refuses_inconsistent_docs(changes, message):
    """A doc without a key, with a state twice, or a volatile non-property raises ValueError."""
    fields = {"type": "dc.rack", "summary": "s", "key": "k", "properties": {"row": "r"}}
    with pytest.raises(ValueError, match=message):
        EntityDoc(**{**fields, **changes})


# -- the generator ----------------------------------------------------------------


def test_reference_lists_each_type_with_its_poll_and_push_producers():
    """A type's section names every plugin producing it, by kind, and types nobody documents."""
    text = entity_docs.render(
        entity_docs.reference([("racks", Racks), ("rack.events", RackEvents)])
    )
    assert "- **Produced by:** poll `racks`; push `rack.events`" in text
    assert "## `dc.pdu`\n\n*Not documented by its plugins.*" in text
    assert "| [`dc.pdu`](#dcpdu) | *not documented by its plugins* | `racks` | none |" in text


def test_reference_renders_every_part_of_a_doc():
    """Key, states, parent, relations, volatile marks and escaped cells all reach the Markdown."""
    text = entity_docs.render(entity_docs.reference([("racks", Racks)]))
    section = text.split("## `dc.rack`", 1)[1]
    assert "A rack \\| of the data centre." in text  # the index's cell
    for line in (
        "- **Key:** rack id",
        "- **States:** `powered`, `dark`",
        "- **Project:** none (always null)",
        "- **Parent:** `dc.room`: the room it stands in",
        "  - `feeds` → `dc.pdu`",
        "- **Volatile properties:** `temperature`",
        "| `row` | the row |  |",
        "| `temperature` | inlet temperature | yes |",
    ):
        assert line in section


def test_plugins_of_no_fixed_type_are_named_with_their_first_docstring_line():
    """A plugin with no entity_types is listed by name and the first line of its docstring."""
    text = entity_docs.render(entity_docs.reference([("anything", Anything)]))
    assert "- `anything`: Whatever its files say.\n" in text
    assert "More detail" not in text


def test_plugins_documenting_one_type_differently_are_refused():
    """Two plugins whose docs of one type differ make the reference fail, naming both."""
    other = EntityDoc(type="dc.rack", summary="Another view.", key="rack id")
    plugins = [("racks", Racks), ("rival", _plugin(NotificationPlugin, ("dc.rack",), (other,)))]
    with pytest.raises(ValueError, match=r"'racks' and 'rival' document dc\.rack differently"):
        entity_docs.reference(plugins)


@pytest.mark.parametrize(
    ("types", "docs", "message"),
    [
        ((), (RACK,), "does not produce"),
        (("dc.rack",), (RACK, RACK), "a type twice"),
    ],
)
def test_docs_must_match_the_plugins_entity_types(types, docs, message):
    """A doc of a type the plugin does not produce, or a type documented twice, is refused."""
    with pytest.raises(ValueError, match=message):
        entity_docs.reference([("p", _plugin(CollectorPlugin, types, docs))])


# -- the shipped plugins and the committed reference -------------------------------


def test_committed_reference_is_not_stale():
    """doc/entities.md equals what the generator writes from the installed plugins now."""
    assert COMMITTED.read_text(encoding="utf-8") == entity_docs.generate(), (
        "run 'tox -e docs' and commit doc/entities.md"
    )


def test_every_installed_entity_type_has_a_section():
    """Each type of each installed plugin's entity_types has its section in doc/entities.md."""
    headings = set(re.findall(r"^## `([^`]+)`$", COMMITTED.read_text(), re.MULTILINE))
    assert headings == {t for _name, cls in SHIPPED for t in cls.entity_types}


@pytest.mark.parametrize(("name", "cls"), SHIPPED, ids=[name for name, _ in SHIPPED])
def test_every_plugin_documents_exactly_the_types_it_produces(name, cls):
    """A plugin's entity_docs hold one doc per type of its entity_types, and no other."""
    documented = [doc.type for doc in cls.entity_docs]
    assert sorted(documented) == sorted(cls.entity_types)
    for doc in cls.entity_docs:
        assert doc.volatile == cls.volatile_properties & set(doc.properties), doc.type


def test_check_passes_on_the_committed_file_and_fails_on_a_stale_one(tmp_path, capsys):
    """--check exits 0 for the current reference and 1, saying so, for any other file."""
    assert entity_docs.main(["--check", str(COMMITTED)]) == 0
    stale = tmp_path / "entities.md"
    stale.write_text(COMMITTED.read_text().replace("volume name", "name"))
    assert entity_docs.main(["--check", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert entity_docs.main(["--check", str(tmp_path / "missing.md")]) == 1


def test_output_writes_the_reference(tmp_path):
    """--output writes the reference into a new folder if need be."""
    out = tmp_path / "doc" / "entities.md"
    assert entity_docs.main(["--output", str(out)]) == 0
    assert out.read_text() == COMMITTED.read_text()


def test_the_module_runs_as_a_program():
    """``python -m synchronizer.cmd.entity_docs`` prints the reference."""
    result = subprocess.run(
        [sys.executable, "-m", "synchronizer.cmd.entity_docs"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert result.stdout == COMMITTED.read_text()


def test_console_script_names_the_generator():
    """The synchronizer-entity-docs console script points at the generator's main."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["synchronizer-entity-docs"] == "synchronizer.cmd.entity_docs:main"
