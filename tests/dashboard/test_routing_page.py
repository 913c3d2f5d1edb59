"""The Routing story page as a viewer: the service's figures, no ticket text, the report offered."""

from datetime import date, timedelta

from tests.dashboard.conftest import SEED, signed_in_app
from triage import story as story_mod


def test_viewer_sees_the_story_and_no_ticket_text(seeded):
    db, _ = seeded
    at = signed_in_app("viewer")
    at.run()
    at.switch_page("app_pages/routing.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Routing story"
    today = date.today()
    st = story_mod.story(db, today - timedelta(days=29), today, minutes_per_review=2.0,
                         tier2_model="claude-sonnet-5-5", today=today)
    shown = " ".join(str(e.value) for kind in ("markdown", "caption", "warning", "info")
                     for e in at.get(kind)).replace("\\$", "$")  # the page escapes dollars for Markdown
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


def test_routing_page_is_in_a_viewers_navigation(seeded):
    at = signed_in_app("viewer")
    at.run()
    assert not at.exception
    import dashboard.app as _  # noqa: F401  (the module lists the pages)

    from dashboard.app import PAGES
    assert ("routing.py", "Routing story") in [(f, t) for f, t, _, _ in PAGES]
