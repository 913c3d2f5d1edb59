"""Issue 25, item 1: names as the team has them. A label file may give a category's key or its shown name in any
case; `triage eval` reads them the same way (and any label column); renaming a category keeps its key and so its
history; Settings says when the environment's taxonomy differs from the saved one."""

import json
from collections.abc import Iterable
from pathlib import Path

from db import labels as db_labels
from db.engine import Database
from tests.support.actors import LEAD
from triage import evaluation, ingest, labels, taxonomy
from triage import settings as config
from triage.settings import Settings
from triage.taxonomy import Taxonomy

NAMES = ["Refund_not_showing_up", "reverted_card_payment?", "balance_not_updated_after_cheque_or_cash_deposit"]
TAX = Taxonomy.from_pairs([(n, f"The customer asks about {n.rstrip('?').replace('_', ' ')}") for n in NAMES])


def batch(rows: Iterable[tuple[str, str]]) -> ingest.LabelledBatch:
    text = "text,label\n" + "".join(f'"{t}","{lab}"\n' for t, lab in rows)
    return ingest.parse_labelled(text, "csv")


def test_label_files_may_name_a_category_by_key_or_name_in_any_case_and_a_rename_keeps_its_history(
        db: Database) -> None:
    rows = [("my refund is still not there", "refund_not_showing_up"),
            ("the refund never reached my account", "REFUND_NOT_SHOWING_UP"),
            ("a card payment came back", "Reverted_Card_Payment?"),
            ("cheque deposited, balance unchanged", "Balance_Not_Updated_After_Cheque_Or_Cash_Deposit"),
            ("something else", "Refund not showing up")]  # neither key nor name: refused, said
    plan = labels.plan(db, batch(rows), TAX, "history.csv")
    assert [t.label for t in plan.new] == ["refund_not_showing_up", "refund_not_showing_up", "reverted_card_payment",
                                           "balance_not_updated_after_cheque_or_cash_deposit"]
    assert plan.unknown_labels == {"Refund not showing up": 1}
    labels.import_labels(db, batch(rows), TAX, file="history.csv", actor=LEAD, retrain=False)
    config.save_taxonomy(db, TAX, actor=LEAD)
    renamed = Taxonomy.from_dict({"categories": [
        {"key": "refund_not_showing_up", "name": "Refund missing (bank side)", "description": "Refund not arrived"},
        *TAX.to_dict()["categories"][1:]]})
    change = taxonomy.diff(TAX, renamed)
    assert list(change.renamed) == ["refund_not_showing_up"] and not change.added and not change.removed
    config.save_taxonomy(db, renamed, actor=LEAD)
    in_force = config.effective(db)[1]
    assert in_force == renamed and in_force.shown["refund_not_showing_up"] == "Refund missing (bank side)"
    with db.read() as s:  # the labels stay with the category: its key did not change
        assert db_labels.operator_label_counts(s, in_force.names)["refund_not_showing_up"] == 2
    again = labels.plan(db, batch([("my refund is still not there", "refund missing (BANK SIDE)")]), in_force, "x")
    assert again.unchanged == 1 and not again.changes  # the new name reaches the same labelled ticket


def test_eval_reads_any_label_column_and_names_in_any_case(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(json.dumps({"query": t, "intent": lab}) for t, lab in [
        ("refund not in my account", "REFUND_not_showing_up"), ("payment reverted", "reverted_card_payment?")]))
    read = evaluation.read_gold(str(gold), TAX, text_column="query", label_column="intent")
    assert read.labels == ["refund_not_showing_up", "reverted_card_payment"]
    assert read.texts == ["refund not in my account", "payment reverted"]


def test_settings_says_when_the_environments_taxonomy_differs_from_the_saved_one(db: Database, tmp_path: Path) -> None:
    env_file = tmp_path / "tax.csv"
    env_file.write_text(TAX.to_csv(), encoding="utf-8")
    base = Settings(taxonomy_path=str(env_file))
    assert taxonomy.load(env_file) == TAX  # a CSV taxonomy file, keys and names kept
    assert config.environment_taxonomy_change(db, base) is None  # nothing saved: the environment's is in force
    config.save_taxonomy(db, TAX, actor=LEAD)
    assert config.environment_taxonomy_change(db, base) is None  # the same
    config.save_taxonomy(db, taxonomy.default(), actor=LEAD)
    change = config.environment_taxonomy_change(db, base)
    assert change is not None and set(change.added) == set(TAX.names) and set(change.removed) == {
        "billing", "technical", "product_feedback", "account"}


def test_label_counts_add_up_and_name_the_rows_merged_as_duplicates(db: Database) -> None:
    rows = [("my refund is still not there", "refund_not_showing_up"),  # row 1
            ("a card payment came back", "reverted_card_payment?"),  # 2
            ("my refund is still not there", "Refund_not_showing_up"),  # 3: the same ticket and label as row 1
            ("", "refund_not_showing_up"),  # 4: no text
            ("an unknown one", "lost_card"),  # 5: outside the taxonomy
            ("a card payment came back", "REVERTED_CARD_PAYMENT?"),  # 6: as row 2
            ("cheque deposited", "balance_not_updated_after_cheque_or_cash_deposit")]  # 7
    plan = labels.plan(db, batch(rows), TAX, "history.csv")
    c = plan.counts()
    assert (c["rows"], c["rows_used"], c["merged_duplicates"], c["rows_left_out"]) == (7, 3, 2, 2)
    assert c["rows_used"] + c["merged_duplicates"] + c["rows_left_out"] == c["rows"]
    assert plan.merged == {3: 1, 6: 2} and len(plan.new) == 3
    assert plan.merged_lines() == ["2 rows merged as duplicates of an earlier row (the same ticket, the same label): "
                                   "row 3 (as row 1); row 6 (as row 2)"]
    assert "7 rows (3 used, 2 merged as duplicates, 2 left out)" in plan.summary()
