"""The Routing story page as a viewer: the service's figures, no ticket text, the report offered."""

from datetime import date, timedelta

from db.engine import Database
from tests.dashboard.conftest import SEED, signed_in_app
from triage import story as story_mod


def test_viewer_sees_the_story_and_no_ticket_text(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = signed_in_app("viewer")
    at.run()
    at.switch_page("app_pages/routing.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Routing story"
    today = date.today()
    st = story_mod.story(db, today - timedelta(days=29), today, minutes_per_review=2.0,
                         tier2_model="claude-sonnet-5-5", today=today)
    shown = " ".join(str(e.value) for elements in (at.markdown, at.caption, at.warning, at.info)
                     for e in elements).replace("\\$", "$")  # the page escapes dollars for Markdown
    for line in st.headline:
        assert line in shown
    assert at.metric[0].value == f"{st.current.tickets:,}" == "6"
    assert at.metric[1].value == story_mod.usd(st.current.total, fine=True)
    charts = at.get("plotly_chart")
    assert any('"sankey"' in c.proto.spec for c in charts)
    everything = shown + " ".join(str(getattr(e, "value", "")) for e in at.get("dataframe")) + \
        " ".join(c.proto.spec for c in charts)
    for text in SEED:
        assert text not in everything  # no ticket text, in any element
    assert [b.proto.label for b in at.get("download_button")] == ["Download the report (HTML)",
                                                                 "Download every figure (JSON)"]


def test_routing_page_is_listed_for_viewers() -> None:
    """dashboard/app.py's PAGES (read without running Streamlit): the page needs only VIEW_REPORTS."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parents[2] / "dashboard" / "app.py").read_text())
    pages = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PAGES")
    assert isinstance(pages, ast.List)
    rows = [[ast.unparse(e) for e in t.elts] for t in pages.elts if isinstance(t, ast.Tuple)]
    assert ["'routing.py'", "'Routing story'", "':material/account_tree:'", "Action.VIEW_REPORTS"] in rows
