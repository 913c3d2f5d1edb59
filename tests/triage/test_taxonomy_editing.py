"""Issue 27, item 6: a taxonomy edited in a table never saves "nan" (an empty cell is empty, a description is
required), the change is a diff, and the audit trail keeps the old text."""

import json

import pandas as pd
import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import AuditEvent
from tests.support.actors import LEAD
from triage import audit, taxonomy
from triage import settings as config
from triage.taxonomy import Taxonomy, TaxonomyError

TAX = taxonomy.default()


@pytest.mark.parametrize("empty", [None, float("nan"), pd.NA, "nan", "NaN", " None "])
def test_an_empty_description_cell_is_refused_never_saved_as_nan(empty: object) -> None:
    rows = [{"name": c.name, "description": c.description} for c in TAX.categories] + \
        [{"name": "shipping", "description": empty}]
    with pytest.raises(TaxonomyError, match="'shipping' needs a one-line description"):
        Taxonomy.from_rows(rows)


def test_rows_from_pandas_keep_their_text_and_a_row_left_blank_is_dropped() -> None:
    frame = pd.DataFrame([{"name": c.name, "description": c.description} for c in TAX.categories] +
                         [{"name": " shipping ", "description": "parcels and delivery"},
                          {"name": None, "description": float("nan")}])
    got = Taxonomy.from_rows(frame.to_dict("records"))
    assert got.names == [*TAX.names, "shipping"] and got.categories[-1].description == "parcels and delivery"


def test_the_diff_names_what_is_added_removed_and_changed_with_the_old_text() -> None:
    cats = {c.name: c.description for c in TAX.categories}
    after = Taxonomy.from_pairs([(n, "login, password and profile" if n == "account" else d)
                                 for n, d in cats.items() if n != "product_feedback"] + [("shipping", "parcels")])
    change = taxonomy.diff(TAX, after)
    assert change.added == {"shipping": "parcels"} and change.removed == {"product_feedback": cats["product_feedback"]}
    assert change.changed == {"account": (cats["account"], "login, password and profile")}
    assert change.count == 3 and not taxonomy.diff(TAX, TAX)
    assert change.audit()["account"] == [cats["account"], "login, password and profile"]


def test_the_audit_trail_keeps_the_old_description(db: Database) -> None:
    old = {c.name: c.description for c in TAX.categories}["account"]
    config.save_taxonomy(db, Taxonomy.from_pairs([(c.name, "sign-in trouble" if c.name == "account" else
                                                   c.description) for c in TAX.categories]), actor=LEAD)
    with db.read() as s:
        detail = json.loads(s.scalars(select(AuditEvent.detail).where(AuditEvent.event == "settings.taxonomy")).one())
    assert detail["changed"] == {"account": [old, "sign-in trouble"]}
    assert f"account: {old} → sign-in trouble" in audit.describe(detail)


def test_editing_categories_keeps_a_custom_priority_scale_and_the_diff_names_a_scale_change() -> None:
    scale = taxonomy.priority_levels([{"name": "P1", "description": "down now"}, {"name": " p2 ", "description":
                                      "soon"}, {"name": None, "description": float("nan")}])
    assert [(p.name, p.description) for p in scale] == [("p1", "down now"), ("p2", "soon")]  # blank row dropped
    custom = TAX.with_priorities(scale)
    rows = [{"name": c.name, "description": c.description} for c in TAX.categories]
    assert Taxonomy.from_rows(rows, custom.priorities).priorities == scale  # a category edit keeps the scale
    change = taxonomy.diff(TAX, custom)
    assert change and change.count == 1 and not (change.added or change.removed or change.changed)
    assert change.lines() == ["~ priority scale: urgent, high, normal, low -> p1, p2"]
    assert change.audit()["priority scale"] == ["\n".join(f"{p.name}: {p.description}" for p in TAX.priorities),
                                                "p1: down now\np2: soon"]
    with pytest.raises(TaxonomyError, match="2 to 10 levels"):
        TAX.with_priorities(scale[:1])


def test_a_saved_scale_survives_a_round_trip_and_is_in_the_audit_trail(db: Database) -> None:
    custom = TAX.with_priorities(taxonomy.priority_levels([{"name": "now", "description": "drop everything"},
                                                           {"name": "later", "description": "this week"}]))
    config.save_taxonomy(db, custom, actor=LEAD)
    assert config.effective(db)[1].priority_names == ["now", "later"]
    with db.read() as s:
        detail = json.loads(s.scalars(select(AuditEvent.detail).where(AuditEvent.event == "settings.taxonomy")).one())
    assert detail["changed"]["priority scale"][1] == "now: drop everything\nlater: this week"
