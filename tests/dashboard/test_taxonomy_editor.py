"""Issue 27, item 6 on the Settings page (AppTest): a category added without a description is refused as it is
typed (Save stays off, nothing stored); a valid edit shows its diff before saving; after saving, a new category
says what the local model needs."""

import json
from typing import Any

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.models import AuditEvent
from tests.dashboard.conftest import make_app, name_asked_first
from tests.dashboard.test_pages import texts
from triage import settings as config
from triage import taxonomy

TAX = taxonomy.default()


def edit(at: AppTest, **state: Any) -> None:
    at.session_state["taxonomy_editor"] = {"edited_rows": {}, "added_rows": [], "deleted_rows": [], **state}
    at.run()


def test_a_category_without_a_description_is_refused_before_saving(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    assert at.button(key="save_taxonomy").disabled  # nothing changed yet
    edit(at, added_rows=[{"name": "shipping"}])  # the description cell left empty
    assert any("'shipping' needs a one-line description" in e.value for e in at.error)
    assert at.button(key="save_taxonomy").disabled
    assert config.effective(db)[1].names == TAX.names


def test_the_diff_is_shown_before_saving_and_a_new_category_says_what_the_local_model_needs(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    account = TAX.names.index("account")
    old = TAX.categories[account].description
    at = make_app("settings")
    edit(at, edited_rows={account: {"description": "login and profile"}},
         added_rows=[{"name": "shipping", "description": "parcels and delivery"}])
    shown = texts(at)
    assert "Before saving" in shown and ":green[added] **shipping**: parcels and delivery" in shown
    assert "login and profile" in shown and "~~" in shown  # the old text, struck through, then the new
    save = at.button(key="save_taxonomy")
    assert save.label == "Save 2 taxonomy changes" and not save.disabled
    save.click().run()
    assert not at.exception
    assert config.effective(db)[1].names == [*TAX.names, "shipping"]
    assert any("New category **shipping**" in s.value and "Retrain now" in s.value for s in at.success)
    with db.read() as s:
        detail = json.loads(s.scalars(select(AuditEvent.detail).where(AuditEvent.event == "settings.taxonomy")).one())
    assert detail["changed"] == {"shipping": [None, "parcels and delivery"], "account": [old, "login and profile"]}
    assert at.button(key="save_taxonomy").disabled  # a fresh editor on the saved taxonomy


def test_a_rename_keeps_the_key_and_says_so_and_a_differing_environment_is_said(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    assert not any("differs from the one saved here" in i.value for i in at.info)  # nothing saved yet
    edit(at, edited_rows={0: {"name": "Billing & invoices (€)"}})
    shown = texts(at)
    from dashboard.ui import plain

    assert (f":blue[renamed] **billing**: billing → {plain('Billing & invoices (€)')} "
            "(its key and history stay)") in shown
    at.button(key="save_taxonomy").click().run()
    assert not at.exception
    saved = config.effective(db)[1]
    assert saved.names == TAX.names and saved.shown["billing"] == "Billing & invoices (€)"
    at = make_app("settings")  # the environment's taxonomy (the default) now differs from the saved one
    assert any("differs from the one saved here" in i.value and "renamed" in i.value and "'billing'" in i.value
               for i in at.info)


def test_the_priority_scale_is_edited_beside_the_categories_and_a_category_edit_keeps_it(
        seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    at.session_state["taxonomy_editor_scale"] = {"edited_rows": {0: {"name": "critical"}}, "added_rows": [],
                                                 "deleted_rows": [3]}
    at.run()
    shown = texts(at)
    assert ":orange[priority scale] ~~urgent, high, normal, low~~ → critical, high, normal" in shown
    assert "tickets keep the priority they were given" in shown  # urgent renamed, low removed
    save = at.button(key="save_taxonomy")
    assert save.label == "Save 1 taxonomy change" and not save.disabled
    save.click().run()
    assert not at.exception
    assert config.effective(db)[1].priority_names == ["critical", "high", "normal"]
    at = make_app("settings")  # then a category edit alone: the saved scale stays
    edit(at, edited_rows={0: {"description": "invoices, refunds and charges"}})
    at.button(key="save_taxonomy").click().run()
    assert not at.exception
    saved = config.effective(db)[1]
    assert saved.priority_names == ["critical", "high", "normal"]
    assert saved.categories[0].description == "invoices, refunds and charges"


def test_an_invalid_scale_is_refused_before_saving(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = make_app("settings")
    at.session_state["taxonomy_editor_scale"] = {"edited_rows": {1: {"name": "Unknown"}}, "added_rows": [],
                                                 "deleted_rows": []}
    at.run()
    assert any("reserved" in e.value for e in at.error)
    assert at.button(key="save_taxonomy").disabled
    assert config.effective(db)[1].priority_names == ["urgent", "high", "normal", "low"]


def test_the_name_is_asked_before_the_first_settings_change(seeded: tuple[Database, dict[str, int]]) -> None:
    name_asked_first("settings", "settings changes")
