"""``synchronizer-entity-docs``: the reference of every entity type, from the installed plugins.

Writes Markdown, one section per entity type (what produces it, poll and
push; its key, states, project, parent, relations, properties and volatile
properties), from the :class:`~synchronizer.plugin_base.EntityDoc` each
plugin lists in ``entity_docs``, as Vitrage documents its datasources::

    python -m synchronizer.cmd.entity_docs --output doc/entities.md   # tox -e docs
    python -m synchronizer.cmd.entity_docs --check doc/entities.md    # 1 if stale

Plugins are found through the ``synchronizer.plugins`` entry points
(:func:`synchronizer.plugin_loader.shipped_plugins`): the core imports none
by name, and an operator's own installed plugins are documented too.  A
type no plugin documents still gets its section, saying so.  Exit status:
0, 1 when ``--check`` finds the file stale, 2 when the plugins' docs
contradict each other or their ``entity_types``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from synchronizer import cmd
from synchronizer.plugin_base import EntityDoc, Plugin

PROG = "synchronizer-entity-docs"

HEADER = """\
# Entity types

<!-- Generated from the installed plugins by `python -m synchronizer.cmd.entity_docs`
     (`tox -e docs`): do not edit by hand; a unit test fails when it is stale. -->

Every change carries one entity: its `type` and `key` (unique within the
type), a normalised `state`, the owning `project` (null for
infrastructure), a `parent` (`{type, key}`), `relations` to other entities
(`{relation, type, key}`), its `source` (`poll` or `push`, and the plugin
that produced it) and its `properties`. Volatile properties are carried
but left out of the fingerprint: a change of them alone is no update.
A delete may carry only the type and key.

With several clouds (`[DEFAULT] clouds`), an entity of a cloud's plugin
also carries `cloud` (the cloud's name), and its key, its parent's and its
relations' keys are namespaced by it: `east/<key as below>`. The keys
below are as the cloud knows them; an entity of no cloud (the one cloud
configured without a name) has no `cloud` field and keys as below.
"""


@dataclasses.dataclass(frozen=True, slots=True)
class TypeReference:
    """One entity type: its doc (None when no plugin documents it) and its producers.

    ``producers`` holds ``(plugin name, kind)`` pairs, kind ``poll`` or
    ``push``, sorted by name.
    """

    type: str
    doc: EntityDoc | None
    producers: tuple[tuple[str, str], ...]

    def produced_by(self, kind: str) -> list[str]:
        return [name for name, k in self.producers if k == kind]


@dataclasses.dataclass(frozen=True, slots=True)
class Reference:
    """Every entity type of a set of plugins, sorted by type, and the plugins of no fixed type.

    ``untyped`` holds ``(plugin name, what it says of itself)`` for plugins
    whose ``entity_types`` is empty (``static`` produces the types its files
    name).
    """

    types: tuple[TypeReference, ...]
    untyped: tuple[tuple[str, str], ...] = ()


def reference(plugins: Iterable[tuple[str, type[Plugin]]]) -> Reference:
    """The reference of these ``(name, class)`` plugins.

    Raises ValueError when a plugin documents a type it does not produce,
    or a type twice, or when two plugins document one type differently
    (its poll and push plugins must agree on its one shape).
    """
    producers: dict[str, list[tuple[str, str]]] = {}
    docs: dict[str, tuple[str, EntityDoc]] = {}
    untyped: list[tuple[str, str]] = []
    for name, cls in sorted(plugins, key=lambda p: p[0]):
        if not cls.entity_types:
            untyped.append((name, _first_line(cls.__doc__)))
        for type_ in cls.entity_types:
            producers.setdefault(type_, []).append((name, cls.source_kind))
        for doc in _own_docs(name, cls):
            first = docs.setdefault(doc.type, (name, doc))
            if first[1] != doc:
                raise ValueError(
                    f"plugins {first[0]!r} and {name!r} document {doc.type} differently"
                )
    types = tuple(
        TypeReference(t, docs[t][1] if t in docs else None, tuple(producers[t]))
        for t in sorted(producers)
    )
    return Reference(types, tuple(untyped))


def _own_docs(name: str, cls: type[Plugin]) -> list[EntityDoc]:
    """The plugin's docs, checked against its ``entity_types``."""
    documented = [doc.type for doc in cls.entity_docs]
    stray = sorted(set(documented) - set(cls.entity_types))
    if stray:
        raise ValueError(f"plugin {name!r} documents {stray}, which it does not produce")
    if len(set(documented)) != len(documented):
        raise ValueError(f"plugin {name!r} documents a type twice")
    return list(cls.entity_docs)


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0]


# -- Markdown ---------------------------------------------------------------------


def render(ref: Reference) -> str:
    """The Markdown reference: an index, then one section per type."""
    parts = [HEADER, _index(ref)]
    parts += [_section(t) for t in ref.types]
    return "\n".join(parts)


def _code(text: str) -> str:
    return f"`{text}`"


def _codes(items: Iterable[str]) -> str:
    return ", ".join(_code(i) for i in items) or "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(type_: str) -> str:
    """GitHub's anchor of a ``## `type``` heading."""
    return "#" + re.sub(r"[^\w\- ]", "", type_.lower()).replace(" ", "-")


def _index(ref: Reference) -> str:
    rows = ["| type | summary | poll | push |", "| --- | --- | --- | --- |"]
    for t in ref.types:
        summary = t.doc.summary if t.doc else "*not documented by its plugins*"
        rows.append(
            f"| [{_code(t.type)}]({_anchor(t.type)}) | {_cell(summary)} "
            f"| {_codes(t.produced_by('poll'))} | {_codes(t.produced_by('push'))} |"
        )
    lines = ["## Index", "", *rows, ""]
    if ref.untyped:
        lines.append("Plugins of no fixed type:")
        lines.append("")
        lines += [f"- {_code(name)}: {about}" for name, about in ref.untyped]
        lines.append("")
    return "\n".join(lines)


def _section(t: TypeReference) -> str:
    lines = [f"## {_code(t.type)}", ""]
    produced = [
        f"{kind} {_codes(names)}" for kind in ("poll", "push") if (names := t.produced_by(kind))
    ]
    if t.doc is None:
        lines += [
            "*Not documented by its plugins.*",
            "",
            f"- **Produced by:** {'; '.join(produced)}",
        ]
        return "\n".join([*lines, ""])
    doc = t.doc
    lines += [doc.summary, "", f"- **Produced by:** {'; '.join(produced)}"]
    lines += [f"- **Key:** {doc.key}", *_state_lines(doc)]
    lines.append(f"- **Project:** {doc.project or 'none (always null)'}")
    lines.append(f"- **Parent:** {_parent(doc)}")
    lines += _relation_lines(doc)
    lines.append(f"- **Volatile properties:** {_codes(sorted(doc.volatile))}")
    return "\n".join([*lines, "", *_property_table(doc), ""])


def _parent(doc: EntityDoc) -> str:
    if doc.parent is None:
        return "none"
    return f"{_code(doc.parent)}: {doc.parent_meaning}" if doc.parent_meaning else _code(doc.parent)


def _state_lines(doc: EntityDoc) -> list[str]:
    lines = [f"- **State:** {doc.state or 'as the service says'}"]
    if doc.states:
        lines.append(f"- **States:** {_codes(doc.states)}")
    return lines


def _relation_lines(doc: EntityDoc) -> list[str]:
    if not doc.relations:
        return ["- **Relations:** none"]
    lines = ["- **Relations:**"]
    for r in doc.relations:
        meaning = f": {r.meaning}" if r.meaning else ""
        lines.append(f"  - {_code(r.relation)} → {_code(r.type)}{meaning}")
    return lines


def _property_table(doc: EntityDoc) -> list[str]:
    if not doc.properties:
        return ["No properties."]
    rows = ["| property | meaning | volatile |", "| --- | --- | --- |"]
    for name in sorted(doc.properties):
        volatile = "yes" if name in doc.volatile else ""
        rows.append(f"| {_code(name)} | {_cell(doc.properties[name])} | {volatile} |")
    return rows


# -- the command ----------------------------------------------------------------


def generate() -> str:
    """The reference of every installed plugin (through the entry points)."""
    from synchronizer import plugin_loader

    return render(reference(plugin_loader.shipped_plugins()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Write the Markdown reference of every entity type the installed "
        "plugins produce (standard output by default).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {cmd.version()}")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", type=Path, help="file to write")
    target.add_argument(
        "--check", type=Path, metavar="FILE", help="exit 1 unless FILE is the reference as of now"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        text = generate()
    except ValueError as exc:
        cmd.fail(PROG, f"the plugins' entity docs are inconsistent: {exc}")
    if args.check is not None:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if current != text:
            print(f"{PROG}: {args.check} is stale; regenerate it (tox -e docs)", file=sys.stderr)
            return 1
        return 0
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
