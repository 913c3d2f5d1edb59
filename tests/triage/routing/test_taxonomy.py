import json
from pathlib import Path

import pytest

from triage import taxonomy
from triage.taxonomy import Category, Taxonomy, TaxonomyError


def test_default_taxonomy_has_the_four_categories_with_descriptions() -> None:
    t = taxonomy.default()
    assert t.names == ["billing", "technical", "product_feedback", "account"]
    assert all(c.description for c in t.categories)


@pytest.mark.parametrize("pairs, message", [
    ([("billing", "money")], "at least two categories"),
    ([("billing", "money"), ("billing", "again")], "appears more than once"),
    ([("billing", "money"), ("", "nameless")], "empty name"),
    ([("billing", "money"), ("Billing", "x")], "appears more than once"),  # the same key, and the same name
    ([("billing", "money"), ("???", "x")], "empty name"),
    ([("billing", "money"), ("x" * 101, "x")], "longer than 100"),
    ([("billing", "money"), ("unknown", "x")], "reserved"),
    ([("billing", "money"), ("technical", "")], "needs a one-line description"),
])
def test_invalid_taxonomies_are_rejected_with_a_clear_message(pairs: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.from_pairs(pairs)


def test_load_from_file_and_edit(tmp_path: Path) -> None:
    path = tmp_path / "tax.json"
    path.write_text(json.dumps({"categories": [{"name": "shipping", "description": "Where is my parcel"},
                                               {"name": "returns", "description": "Send it back"}]}))
    t = taxonomy.load(path)
    assert t.names == ["shipping", "returns"] and "returns" in t and "billing" not in t
    edited = Taxonomy(t.categories + (Category("billing", "Money"),))
    assert Taxonomy.from_dict(edited.to_dict()) == edited


def test_load_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="not found"):
        taxonomy.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TaxonomyError, match="not valid JSON"):
        taxonomy.load(bad)
    with pytest.raises(TaxonomyError, match="categories"):
        Taxonomy.from_dict({"cats": []})


NAMES = ["Refund_not_showing_up", "reverted_card_payment?", "balance_not_updated_after_cheque_or_cash_deposit",
         "Carte bancaire perdue / volée", "billing"]


def test_a_category_has_a_shown_name_of_any_characters_and_a_stable_key() -> None:
    assert len(NAMES[2]) == 48
    t = Taxonomy.from_pairs([(n, f"about {n}") for n in NAMES])
    assert t.names == ["refund_not_showing_up", "reverted_card_payment",
                       "balance_not_updated_after_cheque_or_cash_deposit", "carte_bancaire_perdue_vol_e", "billing"]
    assert [t.shown[k] for k in t.names] == NAMES
    assert Taxonomy.from_dict(t.to_dict()) == t  # stored and read back: the same keys and names
    # a taxonomy of keys alone is stored exactly as before (its stored form, and the local tier's hash, unchanged)
    assert taxonomy.default().to_dict() == json.loads(
        __import__("importlib.resources").resources.files("triage.config").joinpath("taxonomy.json").read_text())
    with pytest.raises(TaxonomyError, match="category key 'Bad Key'"):
        Taxonomy((Category("billing", "m"), Category("Bad Key", "x", "Something")))
    with pytest.raises(TaxonomyError, match="appears more than once"):
        Taxonomy.from_pairs([("Lost card", "a"), ("LOST CARD!", "b")])


@pytest.mark.parametrize("cell, key", [
    ("refund_not_showing_up", "refund_not_showing_up"), ("REFUND_NOT_SHOWING_UP", "refund_not_showing_up"),
    ("  Reverted_Card_Payment?  ", "reverted_card_payment"), ("reverted_card_payment", "reverted_card_payment"),
    ("BALANCE_not_updated_after_cheque_or_cash_deposit", "balance_not_updated_after_cheque_or_cash_deposit"),
    ("carte bancaire perdue / VOLÉE", "carte_bancaire_perdue_vol_e"), ("nope", None)])
def test_label_files_may_give_the_key_or_the_name_in_any_case(cell: str, key: str | None) -> None:
    t = Taxonomy.from_pairs([(n, f"about {n}") for n in NAMES])
    assert t.resolve(cell) == key


def test_taxonomy_files_in_json_and_csv_round_trip_and_a_rename_keeps_the_key() -> None:
    t = Taxonomy.from_pairs([(n, f"about, {n}") for n in NAMES])
    assert Taxonomy.from_file_text(t.to_csv(), "csv") == t
    assert Taxonomy.from_file_text(json.dumps(t.to_dict()), "json") == t
    assert Taxonomy.from_file_text(json.dumps(t.to_dict()["categories"]), "json") == t  # a bare list too
    csv_text = "Name,Description\nRefund_not_showing_up,My refund is missing\nbilling,Money\n"
    assert Taxonomy.from_file_text(csv_text, "csv").names == ["refund_not_showing_up", "billing"]
    with pytest.raises(TaxonomyError, match="columns name and description"):
        Taxonomy.from_file_text("label,text\na,b\n", "csv")
    renamed = Taxonomy.from_file_text("key,name,description\nrefund_not_showing_up,Refund missing,My refund\n"
                                      "billing,Billing,Money\n", "csv")
    change = taxonomy.diff(Taxonomy.from_file_text(csv_text, "csv"), renamed)
    assert change.renamed == {"refund_not_showing_up": ("Refund_not_showing_up", "Refund missing"),
                              "billing": ("billing", "Billing")}
    assert not change.added and not change.removed
    assert change.changed == {"refund_not_showing_up": ("My refund is missing", "My refund")}
    assert any("renamed 'Refund_not_showing_up' -> 'Refund missing'" in line for line in change.lines())
