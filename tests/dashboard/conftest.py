import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from db.engine import Database
from db.migrate import open_database
from tests.support.actors import LEAD
from tests.support.fakes import Answer, ScriptedProvider, error
from triage import domain as base
from triage import taxonomy
from triage.routing.router import Router
from triage.work import pipeline, runs

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TAX = taxonomy.default()

SEED: dict[str, tuple[Answer, Answer | None]] = {
    "charged twice": (("billing", 0.95), None),
    "app crashes on upload": (("technical", 0.9), None),
    "login or refund?": (("billing", 0.5), ("account", 0.9)),
    "weird one": ({"outcome": base.UNKNOWN_LABEL, "category": "unknown"}, ("technical", 0.55)),
    "overloaded": (error(), None),
    "<script>alert(1)</script> **bold** [link](http://x)": (("product_feedback", 0.92), None),
}


@pytest.fixture
def app_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import streamlit as st

    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    yield db_url
    st.cache_resource.clear()  # stops this test's background worker and closes its database


@pytest.fixture
def seeded(app_env: str) -> Iterator[tuple[Database, dict[str, int]]]:
    db = open_database(app_env)
    router = Router(ScriptedProvider(1, "claude-haiku-5-5", fn=lambda t: SEED[t][0]),
                    ScriptedProvider(2, "claude-sonnet-5-5", fn=lambda t: SEED[t][1]), TAX)
    imp = runs.start_run(db, [(None, t) for t in SEED], source="seed", actor=LEAD)
    asyncio.run(pipeline.process_queue(db, router, run_id=imp.run_id))
    yield db, dict(zip(SEED, imp.ticket_ids, strict=True))
    db.dispose()


def make_app(page: str | None = None, operator: str | None = "alice") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if operator:
        at.session_state["operator_name"] = operator
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "c",
        "client_secret": "s", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
ACCESS = {"leads": ["lena@example.com"], "operators": ["*@ops.example.com"], "viewers": ["vic@example.com"]}
VISITORS: dict[str, dict[str, Any]] = {  # what st.user holds for each kind of visitor, with sign-in configured
    "signed_out": {"is_logged_in": False},
    "unlisted": {"is_logged_in": True, "email": "stranger@elsewhere.test", "email_verified": True, "name": "Stranger"},
    "viewer": {"is_logged_in": True, "email": "vic@example.com", "email_verified": True},
    "operator": {"is_logged_in": True, "email": "olga@ops.example.com", "email_verified": True},
    "lead": {"is_logged_in": True, "email": "lena@example.com", "email_verified": True},
}


def name_asked_first(page: str, doing: str) -> None:
    """A local visitor with no name is asked for it on `page` before the first action ("stamped on your
    `doing`"), once: typed, the field goes and the name is the session's."""
    at = make_app(page, operator=None)
    assert not at.exception
    assert f"stamped on your {doing}" in at.text_input(key="operator_name_first").label
    at.text_input(key="operator_name_first").set_value("maria").run()
    assert not [t for t in at.text_input if t.key == "operator_name_first"]  # asked once
    assert at.session_state["operator_name"] == "maria"


def signed_in_app(kind: str, *, access: dict[str, list[str]] | None = None, entry: str = APP) -> AppTest:
    """The app (or one page file run on its own) with sign-in configured and this visitor; not run yet."""
    at = AppTest.from_file(entry, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.secrets["triage"] = {"access": ACCESS if access is None else access}
    at.user = dict(VISITORS[kind])
    return at
