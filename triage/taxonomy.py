"""The label set: categories with a one-line description each, validated on load."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from triage.domain import UNKNOWN
from triage.errors import InputError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# What an empty table cell prints as (str(NaN), str(None), pandas' NA): never a description, never a name.
_EMPTY_CELL_TEXTS = frozenset({"nan", "none", "null", "<na>", "nat"})


class TaxonomyError(InputError):
    """A taxonomy that cannot be used; the message says why."""


@dataclass(frozen=True)
class Category:
    name: str
    description: str


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]

    def __post_init__(self) -> None:
        validate(self.categories)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def __contains__(self, label: object) -> bool:
        return label in self.names

    def to_dict(self) -> dict[str, Any]:
        return {"categories": [{"name": c.name, "description": c.description} for c in self.categories]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
            raise TaxonomyError('a taxonomy is an object with a "categories" list')
        cats = []
        for i, item in enumerate(data["categories"], 1):
            if not isinstance(item, dict):
                raise TaxonomyError(f"category #{i} must be an object with a name and a description")
            cats.append(Category(str(item.get("name", "")).strip(), str(item.get("description", "")).strip()))
        return cls(tuple(cats))

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Taxonomy:
        return cls(tuple(Category(n.strip(), d.strip()) for n, d in pairs))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> Taxonomy:
        """From an editor's rows (name, description). An empty cell is empty text: a table editor hands pandas
        NaN (or None, or NA) for a cell nobody typed in, and str() of that is "nan", which once reached the prompt
        as a category's description. A row left wholly empty (added, never filled) is dropped."""
        pairs = [(cell_text(r.get("name")), cell_text(r.get("description"))) for r in rows]
        return cls.from_pairs([p for p in pairs if p != ("", "")])


def cell_text(value: object) -> str:
    """A table cell as text: None, NaN, pandas' NA and NaT are "" (never "nan")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' missing values, without importing pandas here
        return ""
    return str(value).strip()


@dataclass(frozen=True)
class Change:
    """What saving `after` over `before` changes: categories added, removed, and described differently."""

    added: dict[str, str] = field(default_factory=dict)  # name -> description
    removed: dict[str, str] = field(default_factory=dict)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (old, new description)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed)

    def audit(self) -> dict[str, list[str | None]]:
        """For the audit trail: name -> [old description, new] (None: the category did not exist / no longer
        does), so the trail keeps the old text."""
        return {**{n: [None, d] for n, d in self.added.items()}, **{n: [d, None] for n, d in self.removed.items()},
                **{n: [old, new] for n, (old, new) in self.changed.items()}}


def diff(before: Taxonomy, after: Taxonomy) -> Change:
    old = {c.name: c.description for c in before.categories}
    new = {c.name: c.description for c in after.categories}
    return Change(added={n: d for n, d in new.items() if n not in old},
                  removed={n: d for n, d in old.items() if n not in new},
                  changed={n: (old[n], d) for n, d in new.items() if n in old and old[n] != d})


def validate(categories: tuple[Category, ...]) -> None:
    problems: list[str] = []
    if len(categories) < 2:
        problems.append(f"a taxonomy needs at least two categories (got {len(categories)})")
    seen: set[str] = set()
    for i, c in enumerate(categories, 1):
        if not c.name:
            problems.append(f"category #{i} has an empty name")
        elif not _NAME_RE.match(c.name):
            problems.append(
                f"category name {c.name!r} must be lower-case letters, digits or _ (start with a letter, max 40)"
            )
        elif c.name == UNKNOWN:
            problems.append(f"{UNKNOWN!r} is reserved for answers outside the taxonomy")
        elif c.name in seen:
            problems.append(f"category {c.name!r} appears more than once")
        seen.add(c.name)
        if c.name and not c.description:
            problems.append(f"category {c.name!r} needs a one-line description")
        elif c.name and c.description.lower() in _EMPTY_CELL_TEXTS:
            problems.append(f"category {c.name!r} needs a one-line description ({c.description!r} is what an empty "
                            "table cell prints as, not a description)")
    if problems:
        raise TaxonomyError("invalid taxonomy: " + "; ".join(problems))


def default() -> Taxonomy:
    text = resources.files("triage.config").joinpath("taxonomy.json").read_text(encoding="utf-8")
    return Taxonomy.from_dict(json.loads(text))


def load(path: str | Path | None) -> Taxonomy:
    """Load a taxonomy JSON file; None gives the built-in default."""
    if path is None:
        return default()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaxonomyError(f"taxonomy file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise TaxonomyError(f"taxonomy file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    return Taxonomy.from_dict(data)
