"""Real-browser tests: `streamlit run` on a free port, a temporary database, the fake Anthropic server, and
Playwright driving Debian's Chromium. Where Chromium or Playwright is missing they skip with the reason, or fail
under CI=true (tests/support/services.py). TRIAGE_TEST_CHROMIUM names the browser binary (default: chromium on
PATH); set it to "" to run the suite as if there were none."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.fake_anthropic import FakeAnthropic
from tests.support.services import service_missing
from tests.support.streamlit_server import ROOT, streamlit_server

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = ROOT / "test-artifacts"

for _module in ("playwright", "pytest_playwright"):  # without them the test modules cannot even be imported
    if importlib.util.find_spec(_module) is None:
        service_missing(f"{_module} is not installed (bash scripts/setup installs the dev extras)", module_level=True)


def _find_chromium() -> tuple[str | None, str]:
    """The Chromium binary, and why there is none."""
    override = os.environ.get("TRIAGE_TEST_CHROMIUM")
    if override is not None:
        return (shutil.which(override) if override else None,
                f"TRIAGE_TEST_CHROMIUM={override!r} is not an executable")
    return (shutil.which("chromium") or shutil.which("chromium-browser"),
            "no chromium on PATH (scripts/test-services installs Debian's package as root)")


CHROMIUM, NO_CHROMIUM = _find_chromium()


@pytest.fixture(scope="session", autouse=True)
def _chromium_is_here() -> None:
    """Session-scoped and autouse, so it runs before pytest-playwright launches the session `browser`."""
    if not CHROMIUM:
        service_missing(NO_CHROMIUM)


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(delay=0.05) as server:
        yield server
        assert not server.invalid, server.invalid[:2]


@pytest.fixture(scope="module")
def app_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database the dashboard under test uses (tests may read it to check what the page shows)."""
    return f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'triage.db'}"


@pytest.fixture(scope="module")
def app_url(fake_api: FakeAnthropic, app_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM:
        pytest.skip("no chromium on this machine (scripts/test-services installs Debian's package as root)")
    pytest.importorskip("playwright")
    env = {**os.environ, "TRIAGE_DATABASE_URL": app_db_url, "ANTHROPIC_API_KEY": fake_api.api_key,
           "ANTHROPIC_BASE_URL": fake_api.base_url}
    with streamlit_server(cwd=ROOT, env=env, log_path=tmp_path_factory.mktemp("log") / "streamlit.log",
                          args=("--server.headless", "true", "--server.address", "127.0.0.1",
                                "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none")) as server:
        yield server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--disable-quic"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


def wait_for_run(page: Page, timeout: int = 30000) -> None:
    page.wait_for_timeout(300)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(state="attached",
                                                                                         timeout=timeout)


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def figures(page: Page) -> dict[str, list[dict[str, Any]]]:
    """The Plotly charts on the page as the browser drew them: title -> traces (name, x, y)."""
    drawn: dict[str, list[dict[str, Any]]]
    drawn = page.eval_on_selector_all(".js-plotly-plot", """plots => Object.fromEntries(plots.map(p => [
        ((p.layout.title && p.layout.title.text) || "").replace(/<[^>]+>/g, ""),
        p.data.map(t => ({name: t.name, x: t.x, y: t.y}))]))""")  # titles without the bold tags Streamlit adds
    return drawn
