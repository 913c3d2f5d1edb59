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


# The priority scale defined with the taxonomy: predicted in the same request as the category, ordered most
# urgent first. A team may rename or change the levels ("priorities" in the taxonomy's JSON).
DEFAULT_PRIORITIES = (
    Category("urgent", "service down, data loss, security or money at risk now; many users blocked"),
    Category("high", "one customer blocked or a deadline close; needs an answer today"),
    Category("normal", "a problem with a workaround, or a question that can wait a day"),
    Category("low", "feedback, feature wishes, thanks, no action needed soon"),
)


@dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    priorities: tuple[Category, ...] = DEFAULT_PRIORITIES  # most urgent first

    def __post_init__(self) -> None:
        validate(self.categories)
        validate_priorities(self.priorities)

    @property
    def priority_names(self) -> list[str]:
        return [p.name for p in self.priorities]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def __contains__(self, label: object) -> bool:
        return label in self.names

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"categories": [{"name": c.name, "description": c.description}
                                              for c in self.categories]}
        if self.priorities != DEFAULT_PRIORITIES:  # the default scale is implied: stored taxonomies stay as they were
            out["priorities"] = [{"name": p.name, "description": p.description} for p in self.priorities]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
            raise TaxonomyError('a taxonomy is an object with a "categories" list')
        cats = []
        for i, item in enumerate(data["categories"], 1):
            if not isinstance(item, dict):
                raise TaxonomyError(f"category #{i} must be an object with a name and a description")
            cats.append(Category(str(item.get("name", "")).strip(), str(item.get("description", "")).strip()))
        raw = data.get("priorities")
        if raw is None:
            return cls(tuple(cats))
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise TaxonomyError('"priorities" is a list of objects with a name and a description, most urgent first')
        levels = tuple(Category(str(p.get("name", "")).strip(), str(p.get("description", "")).strip()) for p in raw)
        return cls(tuple(cats), levels)

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


def validate_priorities(levels: tuple[Category, ...]) -> None:
    problems: list[str] = []
    if not 2 <= len(levels) <= 10:
        problems.append(f"a priority scale has 2 to 10 levels (got {len(levels)})")
    names = [p.name for p in levels]
    for p in levels:
        if not _NAME_RE.match(p.name):
            problems.append(f"priority name {p.name!r} must be lower-case letters, digits or _ (start with a letter)")
        elif p.name == UNKNOWN:
            problems.append(f"{UNKNOWN!r} is reserved: it is what a ticket's priority is when nobody could tell")
        if p.name and (not p.description or p.description.lower() in _EMPTY_CELL_TEXTS):
            problems.append(f"priority {p.name!r} needs a one-line description")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"priority {', '.join(dupes)} appears more than once")
    if problems:
        raise TaxonomyError("invalid priority scale: " + "; ".join(problems))


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
