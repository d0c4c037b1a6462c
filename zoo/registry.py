"""The catalog: one YAML file per entry in ``zoo/entries/`` (typed by ``zoo.schema``). Reads YAML only: finds and
returns entries; what exists of their weights and measurements is ``zoo.listing``'s, building is ``zoo.loading``'s."""
from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import yaml

from .errors import ConfigError, UnknownEntryError
from .schema import NOT_INHERITED, Entry, deep_merge, parse_entry

ENTRIES_DIR = Path(__file__).resolve().parent / "entries"


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an entry must be a YAML mapping")
    return raw


def _resolve(name: str, raw: dict[str, dict], paths: dict[str, Path], chain: tuple[str, ...] = ()) -> dict:
    """The entry's mapping with its ``extends`` parents merged underneath (parents first)."""
    if name in chain:
        raise ConfigError(f"{paths[name]}: circular 'extends' chain {' -> '.join((*chain, name))}")
    own = dict(raw[name])
    parent = own.pop("extends", None)
    if parent is None:
        return own
    if parent not in raw:
        raise ConfigError(f"{paths[name]}: extends unknown entry {parent!r}")
    base = {k: v for k, v in _resolve(parent, raw, paths, (*chain, name)).items() if k not in NOT_INHERITED}
    return deep_merge(base, own)


def load_entries(folder: Path = ENTRIES_DIR) -> dict[str, Entry]:
    """Parse every ``*.yaml`` in ``folder``; ``_*.yaml`` files are bases for ``extends`` and are not listed."""
    paths = {p.stem: p for p in sorted(folder.glob("*.yaml"))}
    raw = {name: _read_yaml(p) for name, p in paths.items()}
    entries = {}
    for name, path in paths.items():
        if name.startswith("_"):
            continue
        entry = parse_entry(_resolve(name, raw, paths), str(path))
        if entry.name != name:
            raise ConfigError(f"{path}: the entry is named {entry.name!r}; file and name must agree")
        entries[name] = entry
    return entries


@lru_cache(maxsize=1)
def _all() -> dict[str, Entry]:
    return load_entries()


def get_entry(name: str) -> Entry:
    """The typed entry; an unknown name raises UnknownEntryError with the closest names."""
    entries = _all()
    if not isinstance(name, str) or name not in entries:
        close = difflib.get_close_matches(str(name), entries, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownEntryError(f"unknown zoo entry {name!r}.{hint} Known entries: {', '.join(sorted(entries))}")
    return entries[name]
