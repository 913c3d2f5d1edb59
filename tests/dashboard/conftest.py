import asyncio
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from db.migrate import open_database
from tests.actors import LEAD
from tests.triage.fakes import ScriptedProvider, error
from triage import domain as base
from triage import pipeline, runs, taxonomy
from triage.router import Router

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TAX = taxonomy.default()

SEED = {
    "charged twice": (("billing", 0.95), None),
    "app crashes on upload": (("technical", 0.9), None),
    "login or refund?": (("billing", 0.5), ("account", 0.9)),
    "weird one": ({"outcome": base.UNKNOWN_LABEL, "category": "unknown"}, ("technical", 0.55)),
    "overloaded": (error(), None),
    "<script>alert(1)</script> **bold** [link](http://x)": (("product_feedback", 0.92), None),
}


@pytest.fixture
def app_env(db_url, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("TRIAGE_DATABASE_URL", db_url)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    yield db_url
    st.cache_resource.clear()  # stops this test's background worker and closes its database


@pytest.fixture
def seeded(app_env):
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
