"""The label set: categories with a one-line description each, validated on load.

A category has a stable key (`Category.name`: lower-case letters, digits and _, what is stored, prompted and
written to files) and a name shown to people (`Category.label`: any characters, up to 100; the key when not
given). A taxonomy file's entries are `name` (shown), `description` and an optional `key`: without one, a name
that is already a key is its own key, any other is slugged (`key_for`). Label files may give either, in any case
(`Taxonomy.resolve`). Renaming a category changes its shown name only: its key, and so its history, stay."""

from __future__ import annotations

import csv
import io
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

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KEY_MAX, LABEL_MAX = 64, 100
# What an empty table cell prints as (str(NaN), str(None), pandas' NA): never a description, never a name.
_EMPTY_CELL_TEXTS = frozenset({"nan", "none", "null", "<na>", "nat"})


class TaxonomyError(InputError):
    """A taxonomy that cannot be used; the message says why."""


@dataclass(frozen=True)
class Category:
    name: str  # the stable key
    description: str
    label: str = ""  # the name shown to people; "" means the key

    @property
    def shown(self) -> str:
        return self.label or self.name


def key_for(name: str) -> str:
    """The key a shown name gets when its file gives none: lower-cased, every run of other characters one _,
    cut to 64 (a name that is already a key is its own key; "reverted_card_payment?" -> reverted_card_payment)."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")[:KEY_MAX].rstrip("_")
    if key and not key[0].isalpha():
        key = ("c_" + key)[:KEY_MAX]
    return key


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

    @property
    def shown(self) -> dict[str, str]:
        """key -> the name people see."""
        return {c.name: c.shown for c in self.categories}

    def resolve(self, text: str) -> str | None:
        """The key a label file's cell means: a key or a shown name, case and surrounding space ignored; None
        when it is neither."""
        low = text.strip().casefold()
        for c in self.categories:
            if low in (c.name.casefold(), c.shown.casefold()):
                return c.name
        return None

    def to_dict(self) -> dict[str, Any]:
        """name and description per category, and the key when the shown name differs from it (a taxonomy of
        keys alone is stored as it always was); the priority scale when it is not the default."""
        out: dict[str, Any] = {"categories": [({"name": c.name} if not c.label or c.label == c.name
                                               else {"key": c.name, "name": c.label}) | {"description": c.description}
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
            cats.append(category(cell_text(item.get("name")), cell_text(item.get("description")),
                                 cell_text(item.get("key"))))
        raw = data.get("priorities")
        if raw is None:
            return cls(tuple(cats))
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise TaxonomyError('"priorities" is a list of objects with a name and a description, most urgent first')
        levels = tuple(Category(str(p.get("name", "")).strip(), str(p.get("description", "")).strip()) for p in raw)
        return cls(tuple(cats), levels)

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Taxonomy:
        return cls(tuple(category(n, d) for n, d in pairs))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]],
                  priorities: tuple[Category, ...] = DEFAULT_PRIORITIES) -> Taxonomy:
        """From an editor's rows (name, description, optional key), with this priority scale. An empty cell is
        empty text: a table editor hands pandas NaN (or None, or NA) for a cell nobody typed in, and str() of that
        is "nan", which once reached the prompt as a category's description. A row left wholly empty (added, never
        filled) is dropped."""
        triples = [(cell_text(r.get("name")), cell_text(r.get("description")), cell_text(r.get("key")))
                   for r in rows]
        return cls(tuple(category(n, d, k) for n, d, k in triples if (n, d, k) != ("", "", "")), priorities)

    def with_priorities(self, priorities: tuple[Category, ...]) -> Taxonomy:
        return Taxonomy(self.categories, priorities)

    @classmethod
    def from_file_text(cls, text: str, fmt: str) -> Taxonomy:
        """A taxonomy file's text: JSON (`{"categories": [...]}` or a bare list) or CSV with the columns name,
        description and optionally key (headers in any case)."""
        if fmt == "json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise TaxonomyError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from exc
            return cls.from_dict({"categories": data} if isinstance(data, list) else data)
        if fmt == "csv":
            reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
            fields = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
            if "name" not in fields or "description" not in fields:
                raise TaxonomyError("a taxonomy CSV needs the columns name and description (key is optional)")
            return cls.from_rows([{k: row.get(f) for k, f in fields.items()} for row in reader])
        raise TaxonomyError(f"a taxonomy file is JSON or CSV, not {fmt!r}")

    def to_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["key", "name", "description"])
        for c in self.categories:
            w.writerow([c.name, c.shown, c.description])
        return out.getvalue()


def category(name: str, description: str, key: str = "") -> Category:
    """A category from a file's or an editor's name, description and optional key (see the module's doc)."""
    name, description, key = name.strip(), description.strip(), key.strip()
    if not key:
        key = name if _NAME_RE.match(name) else key_for(name)
    return Category(key, description, "" if name == key else name)


def priority_levels(rows: Iterable[Mapping[str, object]]) -> tuple[Category, ...]:
    """A priority scale from an editor's rows (name, description; most urgent first), empty rows dropped, empty
    cells empty (never "nan"). Checked when a taxonomy is built with it (validate_priorities)."""
    pairs = [(cell_text(r.get("name")).lower(), cell_text(r.get("description"))) for r in rows]
    return tuple(Category(n, d) for n, d in pairs if (n, d) != ("", ""))


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
    renamed: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (old, new shown name)
    # the priority scale, most urgent first, as "name: description" lines: (before, after) when it changed
    priorities: tuple[list[str], list[str]] | None = None

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.renamed or self.priorities)

    @property
    def count(self) -> int:
        return len(self.added) + len(self.removed) + len(self.changed | self.renamed) + bool(self.priorities)

    def priority_names(self) -> tuple[list[str], list[str]]:
        """The scale's level names before and after (both empty when the scale did not change)."""
        return (_level_names(self.priorities[0]), _level_names(self.priorities[1])) if self.priorities else ([], [])

    def lines(self) -> list[str]:
        """The change in words, one line a category, for a diff shown before saving."""
        out = [f"+ {k}: {d}" for k, d in self.added.items()]
        out += [f"- {k}: {d}" for k, d in self.removed.items()]
        out += [f"~ {k}: renamed {old!r} -> {new!r} (its key and history stay)"
                for k, (old, new) in self.renamed.items()]
        out += [f"~ {k}: {old!r} -> {new!r}" for k, (old, new) in self.changed.items()]
        if self.priorities:
            before, after = self.priority_names()
            out.append(f"~ priority scale: {', '.join(before)} -> {', '.join(after)}")
        return out

    def audit(self) -> dict[str, list[str | None]]:
        """For the audit trail: name -> [old description, new] (None: the category did not exist / no longer
        does), so the trail keeps the old text."""
        return {**{n: [None, d] for n, d in self.added.items()}, **{n: [d, None] for n, d in self.removed.items()},
                **{n: [old, new] for n, (old, new) in self.changed.items()},
                **{f"{n} (name)": [old, new] for n, (old, new) in self.renamed.items()},
                **({"priority scale": ["\n".join(self.priorities[0]), "\n".join(self.priorities[1])]}
                   if self.priorities else {})}


def _level_names(lines: list[str]) -> list[str]:
    return [line.split(":", 1)[0] for line in lines]


def _scale(t: Taxonomy) -> list[str]:
    return [f"{p.name}: {p.description}" for p in t.priorities]


def diff(before: Taxonomy, after: Taxonomy) -> Change:
    """By key: a category whose key stays and whose shown name changes is renamed, never removed and added."""
    old = {c.name: c.description for c in before.categories}
    new = {c.name: c.description for c in after.categories}
    old_shown, new_shown = before.shown, after.shown
    return Change(added={n: d for n, d in new.items() if n not in old},
                  removed={n: d for n, d in old.items() if n not in new},
                  changed={n: (old[n], d) for n, d in new.items() if n in old and old[n] != d},
                  renamed={n: (old_shown[n], s) for n, s in new_shown.items() if n in old and old_shown[n] != s},
                  priorities=(_scale(before), _scale(after)) if before.priorities != after.priorities else None)


def validate(categories: tuple[Category, ...]) -> None:
    problems: list[str] = []
    if len(categories) < 2:
        problems.append(f"a taxonomy needs at least two categories (got {len(categories)})")
    seen: set[str] = set()
    seen_shown: set[str] = set()
    for i, c in enumerate(categories, 1):
        if c.label and len(c.label) > LABEL_MAX:
            problems.append(f"category name {c.label[:40]!r}... is longer than {LABEL_MAX} characters")
        if c.name and c.shown.casefold() in seen_shown:
            problems.append(f"category name {c.shown!r} appears more than once (names are told apart ignoring case)")
        seen_shown.add(c.shown.casefold())
        if not c.name:
            problems.append(f"category #{i} has an empty name")
        elif not _NAME_RE.match(c.name):
            problems.append(
                f"category key {c.name!r} must be lower-case letters, digits or _ (start with a letter, max "
                f"{KEY_MAX})"
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
    """Load a taxonomy file, JSON or (by its .csv suffix) CSV; None gives the built-in default."""
    if path is None:
        return default()
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        if str(path).lower().endswith(".csv"):
            return Taxonomy.from_file_text(text, "csv")
        data = json.loads(text)
    except FileNotFoundError as exc:
        raise TaxonomyError(f"taxonomy file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise TaxonomyError(f"taxonomy file {path} is not valid JSON: {exc.msg} (line {exc.lineno})") from exc
    return Taxonomy.from_dict({"categories": data} if isinstance(data, list) else data)
