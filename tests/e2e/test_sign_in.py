"""Sign-in in a real browser: `streamlit run` with [auth] pointing at a stand-in OIDC provider on 127.0.0.1 and
[triage.access] lists; Chromium signs in as each kind of visitor through Streamlit's own st.login flow."""

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

from db.migrate import open_database  # noqa: E402
from tests.e2e.conftest import shoot, wait_for_run  # noqa: E402
from tests.e2e.fake_oidc import FakeOIDC  # noqa: E402
from tests.support.actors import LEAD  # noqa: E402
from tests.support.streamlit_server import ROOT, free_port, streamlit_server  # noqa: E402
from triage.work import runs

pytestmark = pytest.mark.browser

SECRET_TEXT = "Customer Jane Roe, card ending 4242, wants a refund"


@pytest.fixture(scope="module")
def oidc() -> Iterator[FakeOIDC]:
    with FakeOIDC() as provider:
        yield provider


@pytest.fixture(scope="module")
def signed_app(oidc: FakeOIDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("signin")
    db_url = f"sqlite:///{home / 'triage.db'}"
    db = open_database(db_url)
    runs.start_run(db, [(None, SECRET_TEXT)], source="private.csv", actor=LEAD)
    db.dispose()
    port = free_port()
    (home / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", home / ".streamlit" / "config.toml")
    (home / ".streamlit" / "secrets.toml").write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{'c' * 48}"
client_id = "{oidc.client_id}"
client_secret = "{oidc.client_secret}"
server_metadata_url = "{oidc.metadata_url}"

[triage.access]
leads = ["lena@example.com"]
operators = ["*@ops.example.com"]
viewers = ["vic@example.com"]
""")
    env = {**os.environ, "TRIAGE_DATABASE_URL": db_url, "PYTHONPATH": f"{ROOT}{os.pathsep}"
           f"{os.environ.get('PYTHONPATH', '')}"}
    env.pop("ANTHROPIC_API_KEY", None)
    with streamlit_server(cwd=home, env=env, log_path=home / "streamlit.log", port=port) as server:  # home's config
        yield server.url


def visit_as(browser: Browser, url: str, oidc: FakeOIDC, email: str | None) -> Page:
    """A fresh browser (no cookies) on the dashboard, signed in through the provider as `email` (or not)."""
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.goto(url)
    wait_for_run(page)
    if email:
        oidc.email = email
        issued = oidc.tokens_issued
        page.get_by_role("button", name="Sign in").click()
        deadline = time.monotonic() + 30
        while oidc.tokens_issued == issued and time.monotonic() < deadline:  # the redirects, then the exchange
            page.wait_for_timeout(200)
        assert oidc.tokens_issued == issued + 1  # a real code-for-token exchange happened
        page.wait_for_function("() => !location.pathname.startsWith('/auth') && "
                               "!location.pathname.startsWith('/oauth2callback')", timeout=20000)
        page.wait_for_load_state()
        wait_for_run(page)
        expect(page.get_by_text(email, exact=False).first).to_be_visible(timeout=20000)
    return page


def nav(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    return [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]  # the text after the icon


def test_a_visitor_who_has_not_signed_in_sees_only_the_sign_in_screen(browser: Browser, signed_app: str,
                                                                      oidc: FakeOIDC) -> None:
    page = visit_as(browser, signed_app, oidc, None)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    shoot(page, "sign-in")
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert [b.strip() for b in page.get_by_role("button").all_inner_texts() if b.strip()] == ["Sign in"]
    for path in ("", "/review", "/settings", "/spend"):  # by URL too
        page.goto(signed_app + path)
        wait_for_run(page)
        body = page.inner_text("body")
        assert "Sign in" in body and SECRET_TEXT not in body and "Review queue" not in body and "$" not in body


def test_a_signed_in_person_on_no_list_sees_no_access_with_their_identity(browser: Browser, signed_app: str,
                                                                          oidc: FakeOIDC) -> None:
    page = visit_as(browser, signed_app, oidc, "stranger@elsewhere.test")
    expect(page.get_by_text("No access", exact=False)).to_be_visible()
    expect(page.get_by_text("stranger@elsewhere.test", exact=False)).to_be_visible()
    shoot(page, "no-access")
    assert page.get_by_test_id("stSidebarNav").count() == 0
    assert SECRET_TEXT not in page.inner_text("body")


def test_each_role_gets_its_pages(browser: Browser, signed_app: str, oidc: FakeOIDC) -> None:
    viewer = visit_as(browser, signed_app, oidc, "vic@example.com")
    expect(viewer.get_by_role("heading", name="Spend & routing")).to_be_visible()
    assert nav(viewer) == ["Spend & routing", "Routing story", "Quality"]
    viewer.goto(signed_app + "/review")  # not offered: the navigation falls back to the viewer's first page
    wait_for_run(viewer)
    assert SECRET_TEXT not in viewer.inner_text("body")
    assert viewer.get_by_role("heading", name="Review queue").count() == 0

    operator = visit_as(browser, signed_app, oidc, "olga@ops.example.com")
    assert nav(operator) == ["Classify", "Review queue", "Audit", "Spend & routing", "Routing story", "Quality"]
    expect(operator.get_by_text("Signed in as", exact=False)).to_contain_text("olga@ops.example.com")
    operator.get_by_test_id("stSidebarNav").get_by_text("Review queue", exact=True).click()
    wait_for_run(operator)
    expect(operator.get_by_role("heading", name="Review queue")).to_be_visible()

    lead = visit_as(browser, signed_app, oidc, "lena@example.com")
    assert nav(lead) == ["Classify", "Review queue", "Audit", "Spend & routing", "Routing story", "Quality",
                         "Pilot", "Settings"]
    lead.get_by_test_id("stSidebarNav").get_by_text("Settings", exact=True).click()
    wait_for_run(lead)
    expect(lead.get_by_role("heading", name="Audit trail")).to_be_visible()
    lead.get_by_role("button", name="Sign out").click()
    wait_for_run(lead)
    expect(lead.get_by_role("button", name="Sign in")).to_be_visible()


def test_access_lists_without_auth_close_the_dashboard_in_a_real_browser(browser: Browser, tmp_path: Path) -> None:
    """[triage.access] filled in, [auth] forgotten: before, every visitor was the local lead; now the page says
    what is wrong and shows nothing else."""
    db_url = f"sqlite:///{tmp_path / 'triage.db'}"
    db = open_database(db_url)
    runs.start_run(db, [(None, SECRET_TEXT)], source="private.csv", actor=LEAD)
    db.dispose()
    (tmp_path / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", tmp_path / ".streamlit" / "config.toml")
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[triage.access]\nleads = ["lena@example.com"]\n')
    env = {**os.environ, "TRIAGE_DATABASE_URL": db_url, "PYTHONPATH": f"{ROOT}{os.pathsep}"
           f"{os.environ.get('PYTHONPATH', '')}"}
    env.pop("ANTHROPIC_API_KEY", None)
    with streamlit_server(cwd=tmp_path, env=env, log_path=tmp_path / "streamlit.log") as server:
        page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
        for path in ("", "/review", "/settings"):
            page.goto(server.url + path)
            wait_for_run(page)
            expect(page.get_by_text("Closed.", exact=False)).to_be_visible()
            body = page.inner_text("body")
            assert "[auth] is missing" in body and "single local user" not in body and SECRET_TEXT not in body
            assert page.get_by_test_id("stSidebarNav").count() == 0
            assert not [b for b in page.get_by_role("button").all_inner_texts() if b.strip()]  # no Sign in, no pages
            if not path:
                shoot(page, "sign-in-closed")
