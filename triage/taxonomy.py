"""The label set: categories with a one-line description each, validated on load."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from triage.domain import UNKNOWN
from triage.errors import InputError

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
