"""The ``static`` collector: entities described in YAML files.

Each ``*.yaml``/``*.yml`` file under ``[static] directory`` holds one entity
or a list of them (or ``{entities: [...]}``)::

    type: nova.host
    key: compute-1
    state: up
    project: null
    parent: {type: nova.zone, key: nova}
    relations:
      - {relation: attached, type: cinder.volume, key: vol-1}
    properties: {vcpus: 64}

It is the embedded default (no cloud needed) and a way to describe
infrastructure no API lists (racks, switches, power feeds).  A relative
``directory`` is taken relative to the first configuration file's folder.
A file that is not valid YAML or misses ``type``/``key`` makes the listing
incomplete (so nothing is deleted because of a half-edited file) and is
named in the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import yaml
from oslo_config import cfg

from synchronizer.errors import InvalidRecord
from synchronizer.model import Entity
from synchronizer.plugin_base import CollectorPlugin


class StaticCollector(CollectorPlugin):
    """Entities from YAML files; types are whatever the files say."""

    name: ClassVar[str] = "static"
    default_period: ClassVar[float] = 5.0
    # Local files lose no page: a file removed is meant, so its deletes are not held.
    default_mass_delete_threshold: ClassVar[float] = 1.0

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "directory",
                default="static",
                help="Folder of YAML entity files (relative: to the config file's folder).",
            ),
        ]

    def directory(self) -> Path:
        path = Path(self.options.directory)
        if not path.is_absolute() and self.conf.config_file:
            path = Path(self.conf.config_file[0]).resolve().parent / path
        return path

    def available(self) -> bool | str:
        path = self.directory()
        return True if path.is_dir() else f"directory {path} does not exist"

    def list_all(self) -> Iterator[Entity]:
        root = self.directory()
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))
        for path in files:
            for record in _records(path):
                yield self._entity(path, record)

    def _entity(self, path: Path, record: Any) -> Entity:
        if not isinstance(record, dict):
            raise InvalidRecord(f"{path}: an entity must be a mapping")
        record = dict(record)
        record.setdefault("timestamp", self.observed_at)
        record["source"] = self.source.to_dict()
        try:
            return Entity.from_dict(record)
        except ValueError as exc:
            raise InvalidRecord(f"{path}: {exc}") from exc


def _records(path: Path) -> list[Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidRecord(f"{path}: {exc}") from exc
    if data is None:
        return []
    if isinstance(data, dict) and "entities" in data:
        data = data["entities"]
    return data if isinstance(data, list) else [data]
