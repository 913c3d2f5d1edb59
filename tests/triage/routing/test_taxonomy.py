import json

import pytest

from triage import taxonomy
from triage.taxonomy import Category, Taxonomy, TaxonomyError


def test_default_taxonomy_has_the_four_categories_with_descriptions():
    t = taxonomy.default()
    assert t.names == ["billing", "technical", "product_feedback", "account"]
    assert all(c.description for c in t.categories)


@pytest.mark.parametrize("pairs, message", [
    ([("billing", "money")], "at least two categories"),
    ([("billing", "money"), ("billing", "again")], "appears more than once"),
    ([("billing", "money"), ("", "nameless")], "empty name"),
    ([("billing", "money"), ("Tech Stuff", "x")], "lower-case"),
    ([("billing", "money"), ("unknown", "x")], "reserved"),
    ([("billing", "money"), ("technical", "")], "needs a one-line description"),
])
def test_invalid_taxonomies_are_rejected_with_a_clear_message(pairs, message):
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.from_pairs(pairs)


def test_load_from_file_and_edit(tmp_path):
    path = tmp_path / "tax.json"
    path.write_text(json.dumps({"categories": [{"name": "shipping", "description": "Where is my parcel"},
                                               {"name": "returns", "description": "Send it back"}]}))
    t = taxonomy.load(path)
    assert t.names == ["shipping", "returns"] and "returns" in t and "billing" not in t
    edited = Taxonomy(t.categories + (Category("billing", "Money"),))
    assert Taxonomy.from_dict(edited.to_dict()) == edited


def test_load_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(TaxonomyError, match="not found"):
        taxonomy.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TaxonomyError, match="not valid JSON"):
        taxonomy.load(bad)
    with pytest.raises(TaxonomyError, match="categories"):
        Taxonomy.from_dict({"cats": []})
