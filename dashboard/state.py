"""Shared resources for every page: the database, the background worker, who the operator is."""

from __future__ import annotations

import streamlit as st

from db.engine import database_url
from db.migrate import open_database
from triage.settings import Settings, effective


@st.cache_resource(show_spinner=False)
def _database(url: str):
    return open_database(url)  # applies migrations on start


@st.cache_resource(show_spinner=False, on_release=lambda w: w.stop())
def _worker(url: str):
    from dashboard.worker import BackgroundWorker

    return BackgroundWorker(_database(url)).start()


def database():
    return _database(database_url())


def worker():
    return _worker(database_url())


def settings():
    """(Settings, Taxonomy) in force now: the environment, then what operators saved in Settings."""
    return effective(database(), Settings.from_env())


def has_api_key() -> bool:
    return Settings.from_env().has_api_key


def logged_in_identity() -> str | None:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email") or st.user.get("name") or "")
    except Exception:  # no [auth] in secrets: st.user has no login
        return None
    return None


def auth_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def operator() -> str:
    if auth_configured():  # with a login configured, only the signed-in identity counts
        return logged_in_identity() or ""
    return logged_in_identity() or st.session_state.get("operator_name", "").strip()
