"""Taxonomies for tests and benches beyond the built-in four categories."""

from __future__ import annotations

import json
from pathlib import Path

from triage.taxonomy import Category, Taxonomy

MANY = Path(__file__).resolve().parents[2] / "bench" / "data" / "taxonomy_77.json"


def many() -> Taxonomy:
    """77 categories named as the public BANKING77 set spells them (bench/data/README.md)."""
    return Taxonomy.from_dict(json.loads(MANY.read_text(encoding="utf-8")))


def first(n: int) -> Taxonomy:
    """The first n of them (n >= 2)."""
    return Taxonomy(tuple(Category(c.name, c.description, c.label) for c in many().categories[:n]))
