"""Who gets what on every page, under AppTest with sign-in configured (`at.secrets`) and `at.user` set to each kind
of visitor; the local default without sign-in; the network warning."""

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import streamlit.config
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from db.engine import Database
from db.models import AuditEvent, Correction, ModelCall, Run, Setting, Ticket
from tests.dashboard.conftest import ACCESS, APP, AUTH, SEED, VISITORS, make_app, signed_in_app
from tests.dashboard.test_pages import select_review_rows, texts
from tests.support.fake_anthropic import FakeAnthropic

PAGES = {"classify": "Classify tickets", "review": "Review queue", "audit": "Audit", "spend": "Spend & routing",
         "quality": "Quality", "settings": "Settings", "pilot": "Pilot"}  # the pilot: leads only
MAY_OPEN = {"signed_out": set(), "unlisted": set(), "viewer": {"spend", "quality"},
            "operator": {"classify", "review", "audit", "spend", "quality"}, "lead": set(PAGES)}
PAGE_FILE = {p: str(Path(APP).parent / "app_pages" / f"{p}.py") for p in PAGES}


def everything_shown(at: AppTest) -> str:
    """Every piece of text on the page, including tables and widget labels, for "no ticket text" checks."""
    shown = [texts(at), *(str(t.value) for t in at.title), *(str(b.label) for b in at.button)]
    for kind in ("dataframe", "data_editor"):
        shown += [e.value.to_csv() for e in at.get(kind) if isinstance(e, Element)]
    shown += [f"{m.label} {m.value}" for m in at.metric]
    return " ".join(shown)


def no_ticket_text(at: AppTest) -> bool:
    shown = everything_shown(at)
    return not any(text in shown for text in SEED if len(text) > 8)


def assert_door(at: AppTest, kind: str) -> None:
    """Only the sign-in screen, or "no access" with the identity used: no counts, text, spend or other buttons."""
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Triage"]
    assert not at.metric and not at.get("dataframe") and not at.get("data_editor") and not at.get("plotly_chart")
    assert no_ticket_text(at)
    if kind == "signed_out":
        assert [(b.key, b.label) for b in at.button] == [("sign_in", "Sign in")]
        assert not at.text_input and not at.error
    else:
        assert [b.key for b in at.button] == ["sign_out"]
        assert any("No access" in e.value and "stranger@elsewhere" in e.value for e in at.error)
    assert "$" not in everything_shown(at)  # no spend


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("kind", list(VISITORS))
def test_every_kind_of_visitor_on_every_page(seeded: tuple[Database, dict[str, int]], kind: str, page: str) -> None:
    at = signed_in_app(kind)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page in MAY_OPEN[kind]:
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.title[0].value == PAGES[page]
        if kind == "viewer":  # aggregates and charts only: no ticket text, nothing to press but "Sign out"
            assert no_ticket_text(at) and [b.key for b in at.button] == ["sign_out"]
            assert not at.get("data_editor") and not at.file_uploader and not at.text_area
        return
    # not offered by the navigation ...
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"app_pages/{page}.py")
    if kind in ("signed_out", "unlisted"):
        assert_door(at, kind)
    # ... and the page itself refuses when it is run anyway (opened by URL, or navigation got it wrong)
    direct = signed_in_app(kind, entry=PAGE_FILE[page])
    direct.run()
    assert not direct.exception, [e.value for e in direct.exception]
    assert PAGES[page] not in [t.value for t in direct.title]
    assert no_ticket_text(direct)
    if kind in ("signed_out", "unlisted"):
        assert_door(direct, kind)
    else:
        assert any("may not" in e.value for e in direct.error)
        assert not direct.button and not direct.get("data_editor")


def db_state(db: Database) -> dict[str, object]:
    with db.read() as s:
        return {"tickets": s.execute(select(Ticket.id, Ticket.status, Ticket.category, Ticket.version,
                                            Ticket.escalation_requested).order_by(Ticket.id)).all(),
                **{m.__tablename__: s.scalar(select(func.count()).select_from(m))
                   for m in (ModelCall, Correction, Run, Setting, AuditEvent)}}


@pytest.mark.parametrize("kind", ["signed_out", "unlisted", "viewer"])
def test_a_refused_visitor_makes_no_api_call_reads_no_ticket_text_and_changes_nothing(
        seeded: tuple[Database, dict[str, int]], fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch,
        kind: str) -> None:
    db, ids = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    # the server's own upkeep, which an idle worker does whoever visits (old tickets' languages and masked counts),
    # done first: what is compared is what the visit changes
    from triage.work import backfill

    backfill.run(db)
    before = db_state(db)
    at = signed_in_app(kind)
    at.session_state["pasted"] = "please refund the double charge"  # what a Classify click would queue
    at.query_params["ticket"] = str(ids["charged twice"])
    at.run()
    assert no_ticket_text(at) and not any(b.key in ("classify", "save", "confirm_selected", "bulk_apply",
                                                    "escalate_selected", "prepare_export") for b in at.button)
    for page in PAGES:  # every page, as far as each gets
        direct = signed_in_app(kind, entry=PAGE_FILE[page])
        direct.session_state["pasted"] = "please refund the double charge"
        direct.query_params["ticket"] = str(ids["charged twice"])
        direct.run()
        assert no_ticket_text(direct), page
        assert not any(b.key in ("classify", "save", "prepare_export", "retrain", "load_demo")
                       for b in direct.button), page
    time.sleep(1.5)  # a background worker, had one been started with work queued, would have called by now
    assert fake.requests == []
    assert db_state(db) == before


def test_the_same_attempt_by_an_operator_does_reach_the_api(seeded: tuple[Database, dict[str, int]],
                                                            fake: FakeAnthropic,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: an operator's Classify queues a run the worker sends to the API."""
    from tests.dashboard.test_pages import classify_and_wait

    db, _ = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    at = signed_in_app("operator")
    at.run()
    classify_and_wait(at, "please refund the double charge", lambda _: len(fake.requests) > 0)
    assert fake.requests
    with db.read() as s:
        assert s.scalars(select(Run.started_by).order_by(Run.id.desc())).first() == "olga@ops.example.com"


def test_an_operator_labels_with_their_email_and_a_viewer_sees_charts(seeded: tuple[Database, dict[str, int]]) -> None:
    db, _ = seeded
    at = signed_in_app("operator")
    at.run()
    assert [p for p in ("classify", "review", "spend", "quality")]  # every operator page opens (matrix above)
    at.switch_page("app_pages/review.py").run()
    select_review_rows(at, [2])
    at.button(key="confirm_selected").click().run()
    with db.read() as s:
        assert s.scalars(select(Correction.operator)).one() == "olga@ops.example.com"
    viewer = signed_in_app("viewer")
    viewer.run()
    assert viewer.title[0].value == "Spend & routing"  # a viewer's first page
    assert len(viewer.get("plotly_chart")) == 6 and [m.label for m in viewer.metric][:2] == ["Spend", "Tickets"]


def test_a_lead_sees_recent_audit_events_in_settings(seeded: tuple[Database, dict[str, int]]) -> None:
    at = signed_in_app("lead")
    at.run()
    at.switch_page("app_pages/settings.py").run()
    at.number_input[0].set_value(25.0)
    next(b for b in at.button if b.label == "Save routing").click().run()
    at.button(key="prepare_export").click().run()
    at.run()
    table = next(d.value for d in at.dataframe if "event" in d.value.columns)
    rows = table.to_dict("records")
    assert rows[0]["event"] == "export.tickets" and rows[0]["actor"] == "lena@example.com"
    assert "rows: 6" in rows[0]["detail"] and "every ticket" in rows[0]["detail"]
    assert rows[1]["event"] == "settings.engine" and rows[1]["detail"] == "monthly_budget_usd: 0 → 25.0"
    assert any(r["event"] == "run.start" and "source: seed" in r["detail"] for r in rows)


def test_an_expired_sign_in_asks_to_sign_in_again(seeded: tuple[Database, dict[str, int]]) -> None:
    at = signed_in_app("lead")
    at.user = {**at.user, "exp": int(time.time()) - 60}
    at.run()
    assert any("expired" in i.value for i in at.info)
    assert [(b.key, b.label) for b in at.button] == [("sign_in", "Sign in again")]
    at.button(key="sign_in").click().run()  # signs out, so the identity provider is asked again
    assert [(b.key, b.label) for b in at.button] == [("sign_in", "Sign in")]


def test_an_invalid_access_list_lets_nobody_in(seeded: tuple[Database, dict[str, int]]) -> None:
    at = signed_in_app("lead", access={"leeds": ["lena@example.com"]})
    at.run()
    assert any("access list is invalid" in e.value and "leeds" in e.value for e in at.error)
    assert not at.get("dataframe") and [b.key for b in at.button] == ["sign_out"]


def test_signing_out_leaves_only_the_sign_in_screen(seeded: tuple[Database, dict[str, int]]) -> None:
    at = signed_in_app("lead")
    at.run()
    assert at.title[0].value == "Classify tickets"
    at.button(key="sign_out").click().run()
    assert_door(at, "signed_out")


@pytest.fixture
def listen_on() -> Iterator[Callable[..., None]]:
    """Set where the server listens and which host names it answers (the shipped names unless told)."""
    before = {o: streamlit.config.get_option(o) for o in ("server.address", "server.allowedHosts")}

    def set_address(address: str | None, hosts: Sequence[str] = ("localhost", "127.0.0.1")) -> None:
        streamlit.config.set_option("server.address", address)
        streamlit.config.set_option("server.allowedHosts", list(hosts))

    yield set_address
    for option, value in before.items():
        streamlit.config.set_option(option, value)


def test_without_sign_in_the_local_user_is_a_lead_and_is_told_so(app_env: str, listen_on: Callable[..., None]) -> None:
    listen_on("127.0.0.1")
    at = make_app()
    assert any("single local user, a **lead**" in c.value and "this machine only" in c.value for c in at.caption)
    for page, title in PAGES.items():
        at.switch_page(f"app_pages/{page}.py").run()
        assert at.title[0].value == title and not at.exception
        assert not any("Open to the network" in w.value for w in at.warning)


@pytest.mark.parametrize("address", ["0.0.0.0", None])
def test_open_to_the_network_without_sign_in_warns_on_every_page(app_env: str, listen_on: Callable[..., None],
                                                                 address: str | None) -> None:
    listen_on(address)
    at = make_app()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert any("Open to the network without sign-in" in w.value and "TRIAGE_LISTEN" in w.value
                   for w in at.warning), page
    assert any("open to the network" in c.value for c in at.caption)


@pytest.mark.parametrize("hosts, why", [
    (["localhost", "127.0.0.1", "triage.example.com"], "reach it as `localhost`, `127.0.0.1`, `triage.example.com`"),
    ([], "allowedHosts` is empty"),
    (["*"], "reach it as `*`"),
])
def test_behind_a_proxy_or_for_any_host_name_without_sign_in_warns_on_every_page(app_env: str,
                                                                                 listen_on: Callable[..., None],
                                                                                 hosts: list[str], why: str) -> None:
    """Listening on 127.0.0.1 behind a proxy on this machine (its name in allowedHosts), or answering any host name
    (DNS rebinding), is open too: before, no page said so."""
    listen_on("127.0.0.1", hosts)
    at = make_app()
    for page in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert any("Open to the network without sign-in" in w.value and why in w.value for w in at.warning), \
            (page, [w.value for w in at.warning])
    assert any("open to the network" in c.value for c in at.caption)


def test_open_to_the_network_with_sign_in_needs_no_warning(app_env: str, listen_on: Callable[..., None]) -> None:
    listen_on("0.0.0.0")
    at = signed_in_app("lead")
    at.run()
    assert not any("Open to the network" in w.value for w in at.warning)
    signed_out = signed_in_app("signed_out")
    signed_out.run()
    assert not signed_out.warning


DOOR_KINDS = [k for k in VISITORS if k != "signed_out"]


def assert_closed(at: AppTest, problem: str) -> None:
    """The "closed" screen: why, and nothing else: no page, no data, no button (nobody to sign in or out)."""
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Triage"]
    errors = [e.value.replace("\\", "") for e in at.error]  # the markdown's escapes
    assert any("Closed" in e and problem in e for e in errors), errors
    assert not at.button and not at.text_input and not at.metric and not at.get("dataframe")
    assert no_ticket_text(at) and "$" not in everything_shown(at)
    assert not any("single local user" in c.value for c in at.caption)


def broken_app(kind: str, auth: dict[str, object] | None, *, entry: str = APP) -> AppTest:
    """The app with `[triage.access]` filled in and this `[auth]` (None: none at all), as this visitor."""
    at = AppTest.from_file(entry, default_timeout=60)
    if auth is not None:
        at.secrets["auth"] = auth
    at.secrets["triage"] = {"access": ACCESS}
    at.user = dict(VISITORS[kind])
    return at


def auth_without(key: str) -> dict[str, object]:
    return {k: v for k, v in AUTH.items() if k != key}


BROKEN_AUTH = {  # [triage.access] is filled in; [auth] is ...
    "missing": (None, "[auth] is missing"),
    "misspelt key": ({**auth_without("client_id"), "clientid": "c"}, "unknown key 'clientid'"),
    "no client secret": (auth_without("client_secret"), "missing client_secret"),
    "no redirect": (auth_without("redirect_uri"), "missing redirect_uri"),
    "no cookie secret": (auth_without("cookie_secret"), "missing cookie_secret"),
}


@pytest.mark.parametrize("kind, broken", [*((k, "missing") for k in VISITORS),
                                          *(("lead", b) for b in BROKEN_AUTH if b != "missing")])
def test_access_lists_without_a_working_auth_section_let_nobody_in(seeded: tuple[Database, dict[str, int]],
                                                                   fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch,
                                                                   kind: str, broken: str) -> None:
    """Before, `[triage.access]` without `[auth]` made every visitor the local lead, and no page said so."""
    db, _ = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    auth, problem = BROKEN_AUTH[broken]
    before = db_state(db)
    at = broken_app(kind, auth)
    at.session_state["pasted"] = "please refund the double charge"
    at.run()
    assert_closed(at, problem)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/classify.py")
    for page in ("classify", "settings", "spend"):  # opened by URL: the page itself refuses
        direct = broken_app(kind, auth, entry=PAGE_FILE[page])
        direct.run()
        assert_closed(direct, problem)
    assert fake.requests == [] and db_state(db) == before


@pytest.mark.parametrize("verified", ["missing", "false", "true", None, 1])
@pytest.mark.parametrize("kind", DOOR_KINDS)
def test_only_an_email_the_provider_calls_verified_gets_in(seeded: tuple[Database, dict[str, int]], kind: str,
                                                           verified: str | int | None) -> None:
    """Only `email_verified: true`, a JSON boolean: a provider that says nothing (or says it as a string, a
    number or null) has not vouched for the address, so nobody who uses it gets a role."""
    at = signed_in_app(kind)
    user = {k: v for k, v in VISITORS[kind].items() if k != "email_verified"}
    at.user = user if verified == "missing" else {**user, "email_verified": verified}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = " ".join(e.value.replace("\\", "") for e in at.error)  # the markdown's escapes
    assert "No access" in errors and user["email"] in errors and "verified" in errors
    assert [b.key for b in at.button] == ["sign_out"] and no_ticket_text(at)
    at.user = {**user, "email_verified": True}  # the control: the same person, verified
    at.run()
    assert (at.title[0].value != "Triage") is (kind != "unlisted")


@pytest.fixture
def failing_worker(seeded: tuple[Database, dict[str, int]], fake: FakeAnthropic,
                   monkeypatch: pytest.MonkeyPatch) -> str:
    """The background worker's passes fail with a real database error whose bound values are a ticket's text (as
    SQLAlchemy's errors carry them)."""
    from sqlalchemy import text as sql

    from triage.work import services

    db, _ = seeded
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)

    async def work_once(db: Database, *args: Any, **kwargs: Any) -> None:
        with db.transaction() as s:
            ticket = s.scalars(select(Ticket.text).order_by(Ticket.id)).first()
            s.execute(sql("SELECT * FROM no_such_table WHERE text = :text"), {"text": ticket})

    monkeypatch.setattr(services, "work_once", work_once)
    return next(iter(SEED))


def worker_caption(at: AppTest, deadline: float) -> str:
    while True:
        found = [c.value for c in at.caption if "Worker:" in c.value]
        if found or time.monotonic() > deadline:
            return " ".join(found)
        time.sleep(0.3)
        at.run()


@pytest.mark.parametrize("kind", ["viewer", "operator", "lead"])
def test_the_workers_raw_error_text_is_shown_to_nobody(failing_worker: str, kind: str) -> None:
    """Before, the sidebar showed every role `OperationalError: ... [parameters: ('charged twice',)]`."""
    ticket = failing_worker
    at = signed_in_app(kind)
    at.run()
    shown = worker_caption(at, time.monotonic() + 30)
    assert shown, "the worker's problem is shown"
    assert ticket not in everything_shown(at) and "no_such_table" not in shown and "SELECT" not in shown
    if kind == "viewer":  # a summary: that there is a problem, and who can see it
        assert "operator or a lead can see" in shown and "OperationalError" not in shown
    else:  # what failed and its kind; the text is in the server's log
        assert "last pass failed" in shown and "OperationalError" in shown and "server's log" in shown
